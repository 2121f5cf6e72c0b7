"""Raw Celery tasks: the baselines the engine is measured against (loaded by bench workers only)."""

from functools import cache

import redis
from celery import shared_task
from django.conf import settings
from django.db import connection


@cache
def _redis() -> redis.Redis:
    # One client per worker process, as the engine keeps one database connection: the baseline
    # should not pay for a new connection per task.
    return redis.Redis.from_url(settings.REDIS_URL)


@shared_task(ignore_result=True)
def noop(done_key: str | None = None) -> None:
    if done_key:
        _redis().incr(done_key)


@shared_task(ignore_result=True)
def mark_done(job_id: str) -> None:
    """Mark the caller's job row done, committed: the least a durable engine does to finish a run."""
    with connection.cursor() as cursor:
        cursor.execute("UPDATE bench_job SET done = true WHERE id = %s", [job_id])
