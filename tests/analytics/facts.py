"""Analytics events as the services hand them over, for tests: a finished run with its steps."""

import uuid
from datetime import timedelta

from django.utils import timezone

from analytics.services.recording import events_record, rollups_catch_up


def run_fact(workspace, workflow, *, status="succeeded", minutes_ago=5, duration_ms=1000, wait_ms=100, **extra):
    finished = timezone.now() - timedelta(minutes=minutes_ago)
    started = finished - timedelta(milliseconds=duration_ms)
    return {
        "id": str(uuid.uuid4()),
        "workspace": str(workspace.pk),
        "workflow": str(workflow),
        "status": status,
        "timed_out": False,
        "created_at": (started - timedelta(milliseconds=wait_ms)).isoformat(),
        "started_at": started.isoformat(),
        "finished_at": finished.isoformat(),
        "duration_ms": duration_ms,
        **extra,
    }


def events_of(fact: dict) -> list[dict]:
    """The run.finished event of a run fact, and a step.finished event per step of its `steps`."""
    where = {"workspace": fact["workspace"], "workflow": fact["workflow"], "ts": fact["finished_at"]}
    data = {name: value for name, value in fact.items() if name not in ("id", "workspace", "workflow", "steps")}
    # As the run-events feed does: a run carries its steps' retries and crash recoveries.
    steps = fact.get("steps") or []
    data.setdefault("retries", sum(max((step.get("attempt") or 1) - 1, 0) for step in steps))
    data.setdefault("crashes", sum(step.get("crashes") or 0 for step in steps))
    events = [{"type": "run.finished", "subject": fact["id"], **where, "data": data}]
    for step in steps:
        events.append({"type": "step.finished", "subject": f"{fact['id']}:{step['key']}", **where, "data": step})
    return events


def record(facts: list[dict]) -> int:
    """Record the runs' events and bring the rollups up to date; how many events were new."""
    added = events_record([event for fact in facts for event in events_of(fact)])
    rollups_catch_up()
    return added
