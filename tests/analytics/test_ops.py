import json
import logging
import re

import pytest
from openapi_spec_validator import validate

from analytics.metrics import EVENT_TYPES
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
    assert set(body["checks"]) == {"database", "cache", "broker", "channel_layer"}
    for check in body["checks"].values():
        assert check["status"] == "ok"
        assert isinstance(check["latency_ms"], float)


def test_ready_is_503_naming_the_failed_checks_when_redis_is_unreachable(client, settings):
    dead = f"redis://127.0.0.1:{closed_port()}/0"
    settings.CELERY_BROKER_URL = dead
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": dead}}
    answer = client.get("/ready")
    assert answer.status_code == 503
    body = answer.json()
    assert body["status"] == "unavailable"
    assert body["failed"] == ["cache", "broker"]
    assert body["checks"]["database"]["status"] == "ok"
    assert "onnection" in body["checks"]["broker"]["error"]


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
    assert 'dwc_workflow_runs_total{status="failed"} 0.0' in text
    for event_type in EVENT_TYPES:
        assert f'dwc_events_published_total{{type="{event_type}"}} 0.0' in text
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

    from config.request_context import RequestContextFilter

    formatter_config = settings.LOGGING["formatters"]["json"]
    formatter = JsonFormatter(formatter_config["fmt"], rename_fields=formatter_config["rename_fields"])
    RequestContextFilter().filter(record)
    line = json.loads(formatter.format(record))
    assert line["path"] == "/api/v3/auth/me" and line["status"] == 200 and line["level"] == "INFO"
    assert line["request_id"] == "req-42"
