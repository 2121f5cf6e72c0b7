"""Where run events go. The engine hands the events of each transaction here once it committed.

Today: Prometheus metrics (runs, steps, generation tokens and cost), queued schedule slots, the
requests waiting for a run to end (workflows.run_ends), and the websocket broadcast
(workflows.realtime), and the notification rules and analytics: finished and waiting runs go, as one
message on the `notifications` queue, to workflows.tasks.run_events_hand_on. (Event triggers are sent by the engine
when it finishes a run: the run's lock query already tells it whether any follow the workflow.)

Budget events (`budget.threshold`, `budget.exceeded`) are not run events: the engine's budgets hand
them to `publish_budget_events`, which sends them to workflows.tasks.budget_events_hand_on on the same
queue, where the notification rules take them.
"""

import json
import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from kombu.exceptions import KombuError

from config.celery import app as celery_app
from core import metrics
from workflows import realtime, run_ends
from workflows.models import Run, RunEvent, ScheduleSlot

HAND_ON_TASK = "workflows.tasks.run_events_hand_on"
BUDGET_HAND_ON_TASK = "workflows.tasks.budget_events_hand_on"
NOTIFICATIONS_QUEUE = "notifications"
# The notification rules take the finished and waiting runs; analytics count them (and their start,
# read from the run then: a run's start costs no message of its own).
NOTIFIABLE_TYPES = frozenset({"run.succeeded", "run.failed", "run.cancelled", "run.waiting"})

logger = logging.getLogger(__name__)

# Event payloads carry outputs for live views; beyond this size they carry a marker instead.
MAX_EVENT_VALUE_BYTES = 64 * 1024


def bounded(value: Any) -> Any:
    """`value`, or a small marker when its JSON is larger than an event should carry."""
    size = len(json.dumps(value, default=str))
    if size <= MAX_EVENT_VALUE_BYTES:
        return value
    return {"truncated": True, "bytes": size}


def envelope(event: RunEvent, run: Run) -> dict:
    """The DESIGN §9 envelope."""
    return {
        "type": event.type,
        "id": f"{run.pk}:{event.seq}",
        "seq": event.seq,
        "ts": event.created_at.isoformat(),
        "workspace": str(run.workspace_id),
        "workflow": str(run.workflow_id),
        "run": str(run.pk),
        "step": event.step or None,
        "data": event.data,
    }


def publish(events: list[dict]) -> None:
    """Hand on the envelopes of one committed transaction, in order."""
    for event in events:
        _count(event)
    run_ends.announce(events)
    realtime.broadcast(events)
    _notify(events)


def _notify(events: list[dict]) -> None:
    """Hand the events the notification rules and analytics take to them, as one message. The run's
    state is committed already: a broker that cannot take the message costs these notifications and
    counts (logged), not the run's progress."""
    notifiable = [event for event in events if event["type"] in NOTIFIABLE_TYPES]
    if not notifiable:
        return
    try:
        celery_app.send_task(HAND_ON_TASK, (notifiable,), queue=NOTIFICATIONS_QUEUE)
    except (OSError, KombuError):
        logger.warning("run events not handed to notifications and analytics: the broker refused", exc_info=True)


def publish_budget_events(events: list[dict]) -> None:
    """Hand budget events (plain JSON: type, budget, period_key, run, figures) to the notification
    rules, as one message once the current transaction commits (at once outside one). As for run
    events, a broker that refuses costs the notification (logged), not the step."""

    def send() -> None:
        try:
            celery_app.send_task(BUDGET_HAND_ON_TASK, (events,), queue=NOTIFICATIONS_QUEUE)
        except (OSError, KombuError):
            logger.warning("budget events not handed to notifications: the broker refused", exc_info=True)

    if events:
        transaction.on_commit(send)


def _count(event: dict) -> None:
    metrics.events_published_total.labels(type=event["type"]).inc()
    kind, _, status = event["type"].partition(".")
    if kind == "run" and status in metrics.RUN_FINAL_STATUSES:
        metrics.workflow_runs_total.labels(status=status).inc()
        metrics.run_duration_seconds.observe(event["data"].get("duration_seconds") or 0)
    elif kind == "step" and status in ("succeeded", "failed"):
        node_type = event["data"].get("type", "")
        metrics.step_executions_total.labels(type=node_type, status=status).inc()
        if event["data"].get("duration_ms") is not None:
            metrics.step_duration_seconds.labels(type=node_type).observe(event["data"]["duration_ms"] / 1000)
        usage = event["data"].get("usage") or {}
        if status == "succeeded" and usage.get("provider"):
            _count_generation(usage)
    elif kind == "step" and status == "started" and "queue_wait_ms" in event["data"]:
        metrics.step_queue_wait_seconds.labels(queue=event["data"]["queue"]).observe(
            event["data"]["queue_wait_ms"] / 1000
        )
    elif kind == "step" and status == "retrying":
        metrics.step_retries_total.labels(type=event["data"].get("type", "")).inc()
    if kind == "run" and status in metrics.RUN_FINAL_STATUSES and event["data"].get("trigger") == Run.Trigger.SCHEDULE:
        _start_queued_slots(event)


def _count_generation(usage: dict) -> None:
    provider, model = usage["provider"], usage.get("model", "")
    metrics.generation_tokens_total.labels(provider=provider, model=model, direction="in").inc(
        usage.get("tokens_in", 0)
    )
    metrics.generation_tokens_total.labels(provider=provider, model=model, direction="out").inc(
        usage.get("tokens_out", 0)
    )
    metrics.generation_cost_total.labels(provider=provider, model=model).inc(usage.get("cost", 0))


def _start_queued_slots(event: dict) -> None:
    """A scheduled run ended: a slot queued behind it (overlap: queue) may start now, not at a re-check."""
    schedule_id = ScheduleSlot.objects.filter(run_id=event["run"]).values_list("schedule_id", flat=True).first()
    waiting = ScheduleSlot.objects.filter(
        schedule_id=schedule_id, outcome=ScheduleSlot.Outcome.QUEUED, run__isnull=True
    )
    if schedule_id and waiting.exists():
        celery_app.send_task("workflows.tasks.fire_schedule", (str(schedule_id),), queue=settings.DWC_CONTROL_QUEUE)
