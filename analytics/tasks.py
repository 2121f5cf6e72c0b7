"""Celery tasks of analytics: thin doors into analytics.services."""

from celery import shared_task

from analytics.services import insights, recording


@shared_task(ignore_result=True)
def analytics_prune() -> None:
    """Sent by beat hourly: rollups and events past their retention."""
    recording.analytics_prune()


@shared_task(ignore_result=True)
def rollups_catch_up() -> None:
    """Sent by beat every 30 seconds: the events recorded outside the run-events task (webhooks,
    schedules, approvals, notifications, logins) added to the rollups."""
    recording.rollups_catch_up()


@shared_task(ignore_result=True)
def insights_refresh() -> None:
    """Sent by beat every 5 minutes: the insights of every workspace found again from the rollups."""
    insights.insights_refresh()
