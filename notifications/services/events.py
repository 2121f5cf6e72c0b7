"""Where the product hands events to the notification rules: `events_submit`, after the transaction
that caused them commits, as one message to the `notifications` queue (matching and fan-out never run
in a request or in the engine's transaction).

An event is plain JSON, built by whoever knows its subject (workflows.tasks for run events, the
schedule, webhook and credential services for theirs; notifications.services.insights for the
high-severity insights analytics open):

    {
      "type": "run.failed",                      # one of EVENT_TYPES
      "id": "<unique per event>",                # a rule acts on an event once (run id:seq, slot id…)
      "ts": "2026-12-07T01:00:00+00:00",
      "workspace": {"id": "<uuid>", "name": "…"},
      "subject": "<what the throttle counts by>",  # a workflow id, a credential id
      "workflow": {"id", "name", "tags"} | null,
      "run": {"id", "status", "trigger", "started_at", "finished_at", "duration_seconds"} | null,
      "step": {"key", "type", "status"} | null,
      "error": {"type", "message"} | null,
      "link": "https://…/dashboard/…",           # where a person sees it
      "data": {…}                                # the rest: the schedule, the credential, the webhook
    }
"""

from celery import current_app
from django.db import transaction

MATCH_TASK = "notifications.tasks.events_match"
QUEUE = "notifications"

EVENT_TYPES = (
    "run.failed",
    "run.succeeded",
    "run.cancelled",
    "run.waiting",
    "run.timed_out",
    "schedule.missed",
    "webhook.rejected",
    "credential.expiring",
    "budget.threshold",
    "budget.exceeded",
    "insight.opened",
)


def events_submit(events: list[dict]) -> None:
    """Hand events to the rules once the current transaction commits (at once outside one)."""
    events = [event for event in events if event["type"] in EVENT_TYPES]
    if events:
        transaction.on_commit(lambda: current_app.send_task(MATCH_TASK, (events,), queue=QUEUE))
