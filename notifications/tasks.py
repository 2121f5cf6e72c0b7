"""Celery tasks of the notifications queue: thin doors into notifications.services (routed by
CELERY_TASK_ROUTES; services send them by name)."""

from celery import shared_task

from notifications.services import deliveries, matching


@shared_task(acks_late=True, ignore_result=True)
def delivery_send(delivery_id: str) -> None:
    deliveries.delivery_send(delivery_id=delivery_id)


@shared_task(acks_late=True, ignore_result=True)
def deliveries_send(delivery_ids: list[str]) -> None:
    """A batch of deliveries made together (deliveries_create): claimed, sent and recorded together."""
    deliveries.deliveries_send(delivery_ids=delivery_ids)


@shared_task(ignore_result=True)
def deliveries_dispatch() -> None:
    """Sent by beat: scheduled and retrying deliveries that are due, recovery after a worker died, and
    the digests whose window closed."""
    deliveries.deliveries_dispatch()
    matching.digests_send()


@shared_task(acks_late=True, ignore_result=True)
def events_match(events: list[dict]) -> None:
    """Sent by notifications.services.events.events_submit: events for the rules."""
    matching.events_match(events)
