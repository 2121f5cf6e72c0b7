"""What analytics count of this app: the run events handed on after their transaction committed
(workflows.tasks.run_events_hand_on) become analytics events, plain data
(analytics.services.recording): a run started (and, for a run a webhook or a schedule started, the
delivery accepted or the slot fired), counted when it first waits or finishes; a run finished, with
its steps and the documents it generated, read once when it finishes rather than sent one message
per step from the hot path. Refused webhook deliveries, missed schedule slots and approval decisions
are counted by the services that know them, after their transaction commits."""

import uuid
from collections.abc import Iterator
from datetime import datetime
from urllib.parse import urlsplit

from django.utils import timezone

from analytics.services.recording import events_record, events_record_after_commit, rollups_catch_up
from workflows.engine.operations import HUMAN
from workflows.models import Document, Run, Schedule, StepRun, WebhookTrigger, Workflow

FINISHED_TYPES = ("run.succeeded", "run.failed", "run.cancelled")
# A run's start is counted when it first waits or finishes (its start time read from the run then):
# the start itself sends no message from the engine's hot path. Counted once: the event is unique.
STARTED_SEEN = (*FINISHED_TYPES, "run.waiting")
STARTED_BY = {Run.Trigger.WEBHOOK: "webhook.received", Run.Trigger.SCHEDULE: "schedule.fired"}
# What is read of a finished run's steps (their input: the host an HTTP step called) and documents;
# not their outputs and texts, which nothing here counts, nor their runs, which are at hand already.
STEP_FIELDS = (
    "run",
    "node_key",
    "node_type",
    "status",
    "attempt",
    "crashes",
    "duration_ms",
    "usage",
    "error",
    "input",
    "finished_at",
)
DOCUMENT_FIELDS = (
    "run",
    "node_key",
    "provider",
    "model",
    "tokens_in",
    "tokens_out",
    "cost",
    "metadata",
    "created_at",
)


def run_events_count(envelopes: list[dict], runs: dict[str, Run]) -> None:
    """Record the analytics events of `envelopes` (of `runs`, by id) and bring the rollups up to date."""
    if events_record(_events(envelopes, runs)):
        rollups_catch_up()


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _events(envelopes: list[dict], runs: dict[str, Run]) -> Iterator[dict]:
    finished = [envelope for envelope in envelopes if envelope["type"] in FINISHED_TYPES and envelope["run"] in runs]
    for run_id in {envelope["run"] for envelope in envelopes if envelope["type"] in STARTED_SEEN}:
        run = runs.get(run_id)
        if run is not None and run.started_at is not None:
            yield _event("run.started", run, subject=str(run.pk), ts=_iso(run.started_at), trigger=run.trigger)
            if run.trigger in STARTED_BY:  # an accepted delivery or a fired slot is a run started
                yield _event(STARTED_BY[run.trigger], run, subject=str(run.pk), ts=_iso(run.created_at))
    if not finished:
        return
    finished_ids = [envelope["run"] for envelope in finished]
    usage: dict[str, dict] = {}
    steps = StepRun.objects.filter(
        run_id__in=finished_ids, status__in=[StepRun.Status.SUCCEEDED, StepRun.Status.FAILED]
    ).only(*STEP_FIELDS)
    for step in steps:
        run = runs[str(step.run_id)]
        spent = {name: step.usage.get(name) or 0 for name in ("tokens_in", "tokens_out", "cost")}
        # A run's totals: its steps' usage, retries and crash recoveries (counted with the run too, so that
        # a question about whole workspaces reads the run rollups alone).
        total = usage.setdefault(
            str(step.run_id), {"tokens_in": 0, "tokens_out": 0, "cost": 0.0, "retries": 0, "crashes": 0}
        )
        for name, value in (*spent.items(), ("retries", max(step.attempt - 1, 0)), ("crashes", step.crashes)):
            total[name] += value
        yield _event(
            "step.finished",
            run,
            subject=f"{step.run_id}:{step.node_key}",
            ts=_iso(step.finished_at or run.finished_at),
            key=step.node_key,
            type=step.node_type,
            status=step.status,
            attempt=step.attempt,
            crashes=step.crashes,
            duration_ms=step.duration_ms or 0,
            error_type=(step.error or {}).get("type"),
            host=_host_of(step),
            **spent,
        )
    # A reviewer's edit is a version, not a generation: it spent nothing and counts nowhere here.
    generated = Document.objects.filter(run_id__in=finished_ids).exclude(provider=HUMAN)
    for document in generated.only(*DOCUMENT_FIELDS):
        yield _event(
            "document.generated",
            runs[str(document.run_id)],
            subject=str(document.pk),
            ts=document.created_at.isoformat(),
            node_key=document.node_key,
            provider=document.provider,
            model=document.model,
            tokens_in=document.tokens_in,
            tokens_out=document.tokens_out,
            cost=float(document.cost),
            cached=bool(document.metadata.get("cached")),
        )
    for envelope in finished:
        run, data = runs[envelope["run"]], envelope.get("data") or {}
        error = data.get("error") or {}
        yield _event(
            "run.finished",
            run,
            subject=str(run.pk),
            ts=envelope["ts"],
            status=envelope["type"].removeprefix("run."),
            timed_out=error.get("type") == "timeout",
            trigger=run.trigger,
            created_at=_iso(run.created_at),
            started_at=_iso(run.started_at),
            duration_ms=(data.get("duration_seconds") or 0) * 1000,
            error_type=error.get("type"),
            error_message=error.get("message"),
            **usage.get(str(run.pk), {}),
        )


def _event(type_: str, run: Run, *, subject: str, ts: str, **data) -> dict:
    return {
        "type": type_,
        "subject": subject,
        "workspace": str(run.workspace_id),
        "workflow": str(run.workflow_id),
        "ts": ts,
        "data": data,
    }


def _host_of(step: StepRun) -> str | None:
    """The host an HTTP-calling step called (retries behind one host point at it)."""
    url = (step.input or {}).get("url") if isinstance(step.input, dict) else None
    return urlsplit(url).hostname if isinstance(url, str) else None


def webhook_rejected_count(*, hook: WebhookTrigger, reason: str) -> None:
    """A refused delivery, by reason (every one: the notification of it is throttled, the count not).
    `hook.workflow` is loaded."""
    _count_now("webhook.rejected", hook.workflow, subject=str(uuid.uuid4()), reason=reason)


def schedule_missed_count(*, schedule: Schedule, slots: list[datetime]) -> None:
    """The slots one fire recorded missed, as one event. `schedule.workflow` is loaded."""
    if slots:
        subject = f"{schedule.pk}:{slots[0].isoformat()}:{slots[-1].isoformat()}"
        _count_now("schedule.missed", schedule.workflow, subject=subject, slots=len(slots))


def approval_decided_count(*, run: Run, node_key: str, approved: bool) -> None:
    decision = "approved" if approved else "rejected"
    _count_now("approval.decided", run, subject=f"{run.pk}:{node_key}", decision=decision)


def _count_now(type_: str, of: Run | Workflow, *, subject: str, **data) -> None:
    """An event of now about a run or a workflow (its workspace and workflow), recorded once the
    current transaction commits."""
    workflow_id = of.workflow_id if isinstance(of, Run) else of.pk
    event = {"type": type_, "subject": subject, "workspace": of.workspace_id, "workflow": workflow_id}
    events_record_after_commit([{**event, "ts": timezone.now(), "data": data}])
