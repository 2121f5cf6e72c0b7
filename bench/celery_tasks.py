"""Raw Celery no-op tasks: the baseline the engine is measured against (loaded by bench workers only)."""

import redis
from celery import shared_task
from django.conf import settings


@shared_task(ignore_result=True)
def noop(done_key: str | None = None) -> None:
    if done_key:
        redis.Redis.from_url(settings.REDIS_URL).incr(done_key)
