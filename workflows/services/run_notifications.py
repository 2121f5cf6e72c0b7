"""Run events for the notification rules: the engine's envelopes of finished and waiting runs, made into
notification events (notifications.services.events) with what a message names — the workflow's name and
tags, the run, the failed step, a link. Runs in a task on the `notifications` queue (sent by
workflows.events.publish after commit), so the engine's transaction pays only for one message."""

from django.urls import reverse

from notifications.services.matching import events_match
from workflows.models import Run

# Engine events a rule may take. A run that failed by its timeout is `run.timed_out` (a rule on
# `run.failed` takes it too: notifications.services.matching).
RUN_EVENT_TYPES = ("run.succeeded", "run.failed", "run.cancelled", "run.waiting")


def run_event(envelope: dict, run: Run) -> dict:
    """The notification event of one engine envelope (DESIGN §9) of `run`."""
    data = envelope.get("data") or {}
    error = data.get("error")
    event_type = envelope["type"]
    if event_type == "run.failed" and (error or {}).get("type") == "timeout":
        event_type = "run.timed_out"
    step = None
    if event_type == "run.waiting" and data.get("steps"):
        step = {"key": data["steps"][0], "status": "waiting"}
    elif error and error.get("step"):
        step = {"key": error["step"], "status": "failed"}
    workflow = run.workflow
    return {
        "type": event_type,
        "id": envelope["id"],
        "ts": envelope["ts"],
        "workspace": {"id": str(run.workspace_id), "name": run.workspace.name},
        "subject": str(workflow.pk),
        "workflow": {
            "id": str(workflow.pk),
            "name": workflow.name,
            "tags": [tag.name for tag in workflow.tag_set.all()],
        },
        "run": {
            "id": str(run.pk),
            "status": envelope["type"].removeprefix("run."),
            "trigger": run.trigger,
            "started_at": run.started_at.isoformat() if run.started_at else None,
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
            "duration_seconds": data.get("duration_seconds"),
        },
        "step": step,
        "error": {"type": error.get("type", ""), "message": error.get("message", "")} if error else None,
        "link": reverse("dashboard:run", args=[run.pk]),
        "data": {},
    }


def run_events_notify(envelopes: list[dict]) -> None:
    """Hand the run events among `envelopes` to the notification rules."""
    envelopes = [envelope for envelope in envelopes if envelope["type"] in RUN_EVENT_TYPES]
    runs = (
        Run.objects.select_related("workflow", "workspace")
        .prefetch_related("workflow__tag_set")
        .in_bulk([envelope["run"] for envelope in envelopes])
    )
    runs = {str(pk): run for pk, run in runs.items()}
    events = [run_event(envelope, runs[envelope["run"]]) for envelope in envelopes if envelope["run"] in runs]
    if events:
        events_match(events)
