"""Celery tasks: thin doors into the engine and the services. Ids in, nothing out; the database holds state.

The engine sends these by name (workflows.engine.dispatch), so it never imports this module.
"""

from celery import shared_task

from core import metrics
from workflows.engine import deadlines, dispatch, execute, record, recovery
from workflows.services.event_triggers import event_triggers_fire
from workflows.services.notices import budget_events_hand_on as hand_on_budget_events
from workflows.services.notices import credentials_expiry_submit as submit_credentials_expiry
from workflows.services.notices import run_events_hand_on as hand_on_run_events
from workflows.services.schedule_slots import schedule_fire
from workflows.services.webhooks import webhook_deliveries_prune as prune_webhook_deliveries


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def advance_run(self, run_id: str) -> None:
    dispatch.send(execute.advance(run_id, worker=self.request.hostname or "worker"))


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def execute_step(self, step_id: str, attempt: int, run_id: str | None = None) -> None:
    dispatch.send(execute.execute_step(step_id, attempt, worker=self.request.hostname or "worker", run_id=run_id))


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def execute_steps(self, steps: list[list]) -> None:
    """A batch of cheap steps, `[step_id, attempt, run_id]` each, run in one transaction (see dispatch)."""
    dispatch.send(execute.execute_cheap_steps(steps, worker=self.request.hostname or "worker"))


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def resume_step(step_id: str, attempt: int | None) -> None:
    dispatch.send(record.resume_step(step_id, attempt))


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def time_out_run(run_id: str, deadline: str) -> None:
    """Sent when a run with a timeout starts, to arrive at its deadline."""
    deadlines.time_out_run(run_id, deadline)


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def time_out_step(step_id: str, attempt: int) -> None:
    """Sent when an attempt of a step with a timeout starts, to arrive at its deadline."""
    dispatch.send(deadlines.time_out_step(step_id, attempt))


@shared_task(ignore_result=True)
def recover_runs() -> None:
    counts = recovery.recover()
    for kind, found in counts.items():
        metrics.recoveries_total.labels(kind=kind).inc(found)
    metrics.recovery_last_run_timestamp_seconds.set_to_current_time()


@shared_task(acks_late=True, ignore_result=True)
def fire_schedule(schedule_id: str) -> None:
    """Sent by beat (django-celery-beat PeriodicTask) at each cron slot."""
    schedule_fire(schedule_id=schedule_id)


@shared_task(acks_late=True, ignore_result=True)
def fire_event_triggers(run_id: str) -> None:
    """Start the workflows that follow a finished run."""
    event_triggers_fire(run_id=run_id)


@shared_task(ignore_result=True)
def webhook_deliveries_prune() -> None:
    """Sent by beat: forget signed webhook deliveries that can no longer be replayed."""
    prune_webhook_deliveries()


@shared_task(acks_late=True, ignore_result=True)
def run_events_hand_on(envelopes: list[dict]) -> None:
    """Sent by workflows.events.publish on the `notifications` queue: run events for the notification
    rules and for analytics."""
    hand_on_run_events(envelopes)


@shared_task(acks_late=True, ignore_result=True)
def budget_events_hand_on(events: list[dict]) -> None:
    """Sent by workflows.events.publish_budget_events on the `notifications` queue: a budget's period
    crossed its threshold, or refused its first step, for the notification rules."""
    hand_on_budget_events(events)


@shared_task(ignore_result=True)
def credentials_expiry_submit() -> None:
    """Sent by beat hourly: credential.expiring for credentials about to expire or just expired."""
    submit_credentials_expiry()
