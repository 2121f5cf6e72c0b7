import json
import logging
import re

import pytest
import redis
from openapi_spec_validator import validate

from core.metrics import EVENT_TYPES
from tests.conftest import client_for
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

DWC_FAMILIES = [
    "dwc_workflow_runs_total",
    "dwc_step_executions_total",
    "dwc_run_duration_seconds",
    "dwc_websocket_connections_active",
    "dwc_events_published_total",
]


def closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens once the socket is closed


def test_health_touches_nothing(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        answer = client.get("/health")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok"}


def test_ready_checks_every_dependency(client):
    answer = client.get("/ready")
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "cache", "throttles", "broker", "channel_layer"}
    for check in body["checks"].values():
        assert check["status"] == "ok"
        assert isinstance(check["latency_ms"], float)


def test_ready_is_503_naming_the_failed_checks_when_redis_is_unreachable(client, settings):
    dead = f"redis://127.0.0.1:{closed_port()}/0"
    settings.CELERY_BROKER_URL = dead
    dead_cache = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": dead}
    settings.CACHES = {"default": dead_cache, "throttles": dead_cache}
    answer = client.get("/ready")
    assert answer.status_code == 503
    body = answer.json()
    assert body["status"] == "unavailable"
    assert body["failed"] == ["cache", "throttles", "broker"]
    assert body["checks"]["database"]["status"] == "ok"
    assert "onnection" in body["checks"]["broker"]["error"]


def test_ready_is_503_when_redis_would_evict_throttle_counts(client, monkeypatch):
    # The Redis of the tests has no maxmemory; this is what INFO says of one that evicts when full.
    evicting = {"maxmemory": 256 * 1024 * 1024, "maxmemory_policy": "allkeys-lru"}
    monkeypatch.setattr(redis.Redis, "info", lambda self, section=None, *args, **kwargs: evicting)
    body = client.get("/ready").json()
    assert body["failed"] == ["throttles"]
    assert "maxmemory-policy allkeys-lru" in body["checks"]["throttles"]["error"]
    assert "noeviction" in body["checks"]["throttles"]["error"]


def test_status_describes_the_process(client, settings):
    body = client.get("/status").json()
    assert body["version"] == "0.1.0"
    assert body["mode"] == "distributed"
    # The suite runs on the embedded server unless DATABASE_URL names another one.
    assert body["database"] == ("postgresql (external)" if settings.DATABASE_URL else "postgresql (embedded)")
    assert body["broker"] == settings.REDIS_URL  # no password in the test URL, so nothing to redact
    assert body["uptime_seconds"] >= 0
    assert "workers" in body


def test_metrics_expose_every_dwc_family(client):
    text = client.get("/metrics").content.decode()
    for family in DWC_FAMILIES:
        assert f"# TYPE {family.removesuffix('_total')}" in text, family
    # Made at zero when the process starts, so that dashboards see them before the first run (other
    # tests of this process may have counted some by now).
    assert re.search(r'^dwc_workflow_runs_total\{status="failed"\} [0-9.e+]+$', text, re.MULTILINE)
    for event_type in EVENT_TYPES:
        pattern = rf'^dwc_events_published_total\{{type="{re.escape(event_type)}"\}} [0-9.e+]+$'
        assert re.search(pattern, text, re.MULTILINE), event_type
    assert "django_http_requests_total_by_method_total" in text


def test_openapi_schema_is_valid_openapi_3(client):
    answer = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert answer.status_code == 200
    schema = answer.json()
    assert schema["openapi"].startswith("3.")
    validate(schema)
    assert "/api/v3/auth/register" in schema["paths"]
    assert "/api/v3/workspaces/{workspace_pk}/members" in schema["paths"]


def test_swagger_ui_loads_only_local_assets(client):
    answer = client.get("/docs")
    assert answer.status_code == 200
    html = answer.content.decode()
    assert "swagger-ui" in html
    referenced = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    assert referenced, "the page references its assets"
    assert all(not re.match(r"^(https?:)?//", url) for url in referenced), referenced
    assert not re.search(r"https?://(?!127\.0\.0\.1|localhost|testserver)[a-z0-9.-]+\.[a-z]{2,}", html)


def test_unknown_api_url_is_404_problem(client):
    answer = client.get("/api/v3/no-such-thing")
    assert answer.status_code == 404
    assert answer["Content-Type"] == "application/problem+json"
    assert answer.json() == {
        "type": "/problems/not-found",
        "title": "Not Found",
        "status": 404,
        "detail": "No resource at /api/v3/no-such-thing.",
    }


def test_request_id_is_echoed_or_generated(client):
    assert client.get("/health", HTTP_X_REQUEST_ID="abc-123")["X-Request-ID"] == "abc-123"
    generated = client.get("/health")["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    # An id that could forge log lines or headers is replaced, not echoed.
    assert client.get("/health", HTTP_X_REQUEST_ID='a" b')["X-Request-ID"] != 'a" b'


def test_access_log_is_one_json_line_per_request(client, caplog):
    user = UserFactory()
    caplog.set_level(logging.INFO, logger="dwc.access")
    client_for(user).get("/api/v3/auth/me", HTTP_X_REQUEST_ID="req-42")
    [record] = [r for r in caplog.records if r.name == "dwc.access"]
    assert (record.method, record.path, record.status, record.user) == ("GET", "/api/v3/auth/me", 200, str(user.pk))
    assert record.duration_ms >= 0
    assert record.request_id == "req-42"

    from django.conf import settings
    from pythonjsonlogger.json import JsonFormatter

    from core.request_context import RequestContextFilter

    formatter_config = settings.LOGGING["formatters"]["json"]
    formatter = JsonFormatter(formatter_config["fmt"], rename_fields=formatter_config["rename_fields"])
    RequestContextFilter().filter(record)
    line = json.loads(formatter.format(record))
    assert line["path"] == "/api/v3/auth/me" and line["status"] == 200 and line["level"] == "INFO"
    assert line["request_id"] == "req-42"


SCRAPER_TOKEN = "scrape-" + "x" * 40


def test_metrics_answer_only_this_machine_by_default(client):
    assert client.get("/metrics").status_code == 200  # the test client's address is 127.0.0.1
    refused = client.get("/metrics", REMOTE_ADDR="203.0.113.9")
    assert refused.status_code == 403
    assert refused["Content-Type"] == "application/problem+json"
    assert "dwc_" not in refused.content.decode()


def test_the_metrics_token_lets_a_scraper_in_from_anywhere(client, settings):
    settings.DWC_METRICS_TOKEN = SCRAPER_TOKEN
    scraped = client.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION=f"Bearer {SCRAPER_TOKEN}")
    assert scraped.status_code == 200
    assert "dwc_workflow_runs_total" in scraped.content.decode()
    for authorization in ({}, {"HTTP_AUTHORIZATION": "Bearer wrong"}, {"HTTP_AUTHORIZATION": SCRAPER_TOKEN}):
        refused = client.get("/metrics", REMOTE_ADDR="203.0.113.9", **authorization)
        assert refused.status_code == 401
        assert refused["WWW-Authenticate"] == 'Bearer realm="metrics"'


def test_the_metrics_allow_list_takes_networks(client, settings):
    settings.DWC_METRICS_ALLOWED_IPS = ["10.1.0.0/16", "2001:db8::/32"]
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="2001:db8::7").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.2.0.1").status_code == 403
    assert client.get("/metrics").status_code == 403  # the list replaces the default, this machine
