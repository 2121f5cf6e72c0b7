"""Operations endpoints: /health (is the process up), /ready (can it serve), /status (what is it),
/metrics (Prometheus, for the scrapers the operator lets in)."""

import asyncio
import hmac
import ipaddress
import time
import uuid
from collections.abc import Callable
from urllib.parse import urlsplit

import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django_prometheus.exports import ExportToDjangoView
from kombu import Connection

from config import embedded
from config.celery import app as celery_app
from core.problems import ProblemResponse
from core.throttling import client_ip

STARTED_AT = time.time()
CHECK_TIMEOUT_SECONDS = 2.0
_worker_count_cache: dict[str, float | int | None] = {"at": 0.0, "count": None}


def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_cache() -> None:
    key = f"ready-check-{uuid.uuid4().hex}"
    cache.set(key, "1", timeout=10)
    if cache.get(key) != "1":
        raise RuntimeError("the cache did not return what was just written")
    cache.delete(key)


REDIS_EVICTS = (
    "Redis may evict keys when full (maxmemory-policy {policy}): throttle counts would be lost. "
    "Run it with maxmemory-policy noeviction, or without maxmemory."
)


def _check_throttles() -> None:
    """Throttle counts are kept where nothing evicts them (core.throttling): in Redis, that is a policy."""
    store = caches["throttles"]
    key = f"ready-check-{uuid.uuid4().hex}"
    store.set(key, "1", timeout=10)
    if store.get(key) != "1":
        raise RuntimeError("the throttle store did not return what was just written")
    store.delete(key)
    if not isinstance(store, RedisCache):
        return  # the embedded mode's store never evicts a live count
    client = redis.Redis.from_url(settings.CACHES["throttles"]["LOCATION"], socket_timeout=CHECK_TIMEOUT_SECONDS)
    try:
        memory = client.info("memory")
    finally:
        client.close()
    if memory.get("maxmemory") and memory.get("maxmemory_policy") != "noeviction":
        raise RuntimeError(REDIS_EVICTS.format(policy=memory.get("maxmemory_policy")))


def _check_broker() -> None:
    with Connection(settings.CELERY_BROKER_URL, connect_timeout=CHECK_TIMEOUT_SECONDS) as broker:
        broker.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=CHECK_TIMEOUT_SECONDS)


def _check_channel_layer() -> None:
    async def round_trip() -> None:
        layer = get_channel_layer()
        channel = await layer.new_channel("ready-check.")
        await layer.send(channel, {"type": "ready.check"})
        message = await layer.receive(channel)
        if message.get("type") != "ready.check":
            raise RuntimeError("the channel layer returned another message")

    async def bounded() -> None:
        await asyncio.wait_for(round_trip(), CHECK_TIMEOUT_SECONDS)

    async_to_sync(bounded)()


READY_CHECKS: dict[str, Callable[[], None]] = {
    "database": _check_database,
    "cache": _check_cache,
    "throttles": _check_throttles,
    "broker": _check_broker,
    "channel_layer": _check_channel_layer,
}


def ready(request: HttpRequest) -> JsonResponse:
    checks = {}
    for name, check in READY_CHECKS.items():
        started = time.perf_counter()
        try:
            check()
            result = {"status": "ok"}
        except Exception as error:  # any failure means "not ready", and the reason is the payload
            result = {"status": "error", "error": f"{type(error).__name__}: {error}"[:300]}
        result["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
        checks[name] = result
    failed = [name for name, result in checks.items() if result["status"] != "ok"]
    body = {"status": "ok" if not failed else "unavailable", "checks": checks}
    if failed:
        body["failed"] = failed
    return JsonResponse(body, status=503 if failed else 200)


METRICS_TOKEN_NEEDED = "Metrics need the scraper's bearer token (DWC_METRICS_TOKEN)."  # noqa: S105 - a message
METRICS_NOT_FOR_THIS_ADDRESS = "Metrics are served to the addresses in DWC_METRICS_ALLOWED_IPS only."


def metrics_allowed(request: HttpRequest) -> bool:
    """The scraper's token, if one is set, or an address in DWC_METRICS_ALLOWED_IPS."""
    token = settings.DWC_METRICS_TOKEN
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
        return True
    try:
        address = ipaddress.ip_address(client_ip(request))
    except ValueError:
        return False
    if address.version == 6 and address.ipv4_mapped:  # ::ffff:127.0.0.1, as a dual-stack socket reports it
        address = address.ipv4_mapped
    return any(address in ipaddress.ip_network(network) for network in settings.DWC_METRICS_ALLOWED_IPS)


def metrics(request: HttpRequest) -> HttpResponse:
    if metrics_allowed(request):
        return ExportToDjangoView(request)
    if settings.DWC_METRICS_TOKEN:
        refusal = ProblemResponse(401, METRICS_TOKEN_NEEDED, code="not_authenticated")
        refusal["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return refusal
    return ProblemResponse(403, METRICS_NOT_FOR_THIS_ADDRESS, code="permission_denied")


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _worker_count() -> int | None:
    """Workers answering a ping. In the distributed mode that costs a broadcast, so it is cached briefly."""
    if settings.DWC_MODE == "embedded":
        return 1 if embedded.worker_is_running() else 0
    now = time.monotonic()
    if now - _worker_count_cache["at"] > 15:
        try:
            replies = celery_app.control.inspect(timeout=1.0).ping() or {}
            _worker_count_cache["count"] = len(replies)
        except Exception:  # an unreachable broker means "unknown", which /ready reports in detail
            _worker_count_cache["count"] = None
        _worker_count_cache["at"] = now
    return _worker_count_cache["count"]


# Sections the apps add to /status (core imports no app): name -> what to show, read per request.
STATUS_SECTIONS: dict[str, Callable[[], dict]] = {}


def status(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {
            "version": settings.VERSION,
            "mode": settings.DWC_MODE,
            "uptime_seconds": round(time.time() - STARTED_AT, 1),
            "database": f"postgresql ({settings.DWC_DATABASE_SERVER})",
            "broker": _redacted(settings.CELERY_BROKER_URL),
            "workers": _worker_count(),
            **{name: section() for name, section in STATUS_SECTIONS.items()},
        }
    )
