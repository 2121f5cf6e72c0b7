"""Celery tasks of analytics: thin doors into analytics.services."""

from celery import shared_task

from analytics.services.recording import analytics_prune as prune


@shared_task(ignore_result=True)
def analytics_prune() -> None:
    """Sent by beat hourly: rollups and events past their retention."""
    prune()
