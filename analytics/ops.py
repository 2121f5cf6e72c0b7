"""Operations endpoints: /health (is the process up), /ready (can it serve), /status (what is it)."""

import asyncio
import time
import uuid
from collections.abc import Callable
from urllib.parse import urlsplit

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse
from kombu import Connection

from config import embedded
from config.celery import app as celery_app

STARTED_AT = time.time()
CHECK_TIMEOUT_SECONDS = 2.0
_worker_count_cache: dict[str, float | int | None] = {"at": 0.0, "count": None}


def health(request) -> JsonResponse:
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
    "broker": _check_broker,
    "channel_layer": _check_channel_layer,
}


def ready(request) -> JsonResponse:
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


def status(request) -> JsonResponse:
    return JsonResponse(
        {
            "version": settings.VERSION,
            "mode": settings.DWC_MODE,
            "uptime_seconds": round(time.time() - STARTED_AT, 1),
            "database": f"postgresql ({settings.DWC_DATABASE_SERVER})",
            "broker": _redacted(settings.CELERY_BROKER_URL),
            "workers": _worker_count(),
        }
    )
