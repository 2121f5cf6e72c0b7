"""Worker pings: a round trip through the broker and a worker, to see that background work runs.

The record lives in the cache (shared by the server and the workers in both modes) for an hour.
"""

import time
import uuid

from django.core.cache import cache
from django.db import transaction

from config.celery import app as celery_app

PING_TTL_SECONDS = 3600
MAX_DELAY_MS = 5000
# Sent by name: core.tasks calls this module, so importing it here would go upward.
WORKER_PING_TASK = "core.tasks.worker_ping"


def _key(ping_id: str) -> str:
    return f"worker-ping:{ping_id}"


def worker_ping_start(*, user_id: str, delay_ms: int = 0) -> dict:
    """Record a ping and enqueue it once the surrounding transaction commits."""
    ping = {
        "id": str(uuid.uuid4()),
        "status": "queued",
        "delay_ms": delay_ms,
        "user_id": user_id,
        "enqueued_at": time.time(),
        "completed_at": None,
        "worker": None,
    }
    cache.set(_key(ping["id"]), ping, PING_TTL_SECONDS)
    transaction.on_commit(lambda: celery_app.send_task(WORKER_PING_TASK, (ping["id"], delay_ms)))
    return ping


def worker_ping_complete(*, ping_id: str, worker: str) -> None:
    ping = cache.get(_key(ping_id))
    if ping is None:
        return  # expired before a worker took it: nothing is waiting for the answer any more
    ping.update(status="done", completed_at=time.time(), worker=worker)
    cache.set(_key(ping_id), ping, PING_TTL_SECONDS)


def worker_ping_get(*, ping_id: str, user_id: str) -> dict | None:
    ping = cache.get(_key(ping_id))
    if ping is None or ping["user_id"] != user_id:
        return None
    return ping
