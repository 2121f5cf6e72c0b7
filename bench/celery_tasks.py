"""Raw Celery no-op tasks: the baseline the engine is measured against (loaded by bench workers only)."""

from functools import cache

import redis
from celery import shared_task
from django.conf import settings


@cache
def _redis() -> redis.Redis:
    # One client per worker process, as the engine keeps one database connection: the baseline
    # should not pay for a new connection per task.
    return redis.Redis.from_url(settings.REDIS_URL)


@shared_task(ignore_result=True)
def noop(done_key: str | None = None) -> None:
    if done_key:
        _redis().incr(done_key)
