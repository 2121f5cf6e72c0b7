"""The notification events the workflows app raises, in the shape notifications.services.events
documents: run events (`run.failed`, `run.succeeded`, `run.cancelled`, `run.timed_out`, `run.waiting`),
made from the engine's envelopes in a task on the `notifications` queue and matched there at once;
`budget.threshold` and `budget.exceeded`, handed on by the engine's budgets (workflows.events.
publish_budget_events) and made here in a task on the same queue; and `schedule.missed`,
`webhook.rejected` and `credential.expiring`, handed to `events_submit` (one broker message once the
caller's transaction commits, at once outside one).

Links are paths on this site (`/dashboard/…`); a delivery to an outside channel makes them addresses
on DWC_PUBLIC_URL.
"""

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from accounts.models import Workspace
from core.throttling import throttle_cache
from notifications.services.events import events_submit
from notifications.services.matching import events_match
from workflows.models import Budget, Credential, Run, Schedule, WebhookTrigger, Workflow
from workflows.services.analytics_feed import run_events_count

# A flood of refused deliveries raises one `webhook.rejected` per webhook and reason in this many
# seconds (the first refusal's); the rules' throttles and digests take it from there.
REJECTED_EVENT_EVERY_SECONDS = 60
# Events of one beat travel in messages of at most this many.
EVENTS_PER_MESSAGE = 500


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _workspace(workspace: Workspace) -> dict:
    return {"id": str(workspace.pk), "name": workspace.name}


def _workflow(workflow: Workflow) -> dict:
    tags = [tag.name for tag in workflow.tag_set.all()]  # prefetched where many events are made at once
    return {"id": str(workflow.pk), "name": workflow.name, "tags": tags}


def _workflow_link(workflow_id) -> str:
    return reverse("dashboard:workflow", args=[workflow_id])


def _event(type_: str, *, id_: str, workspace: Workspace, subject: str, link: str, data: dict, **extra) -> dict:
    return {
        "type": type_,
        "id": id_,
        "ts": _iso(timezone.now()),
        "workspace": _workspace(workspace),
        "subject": subject,
        "workflow": None,
        "run": None,
        "step": None,
        "error": None,
        "link": link,
        "data": data,
        **extra,
    }


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
    return {
        **_event(
            event_type,
            id_=envelope["id"],
            workspace=run.workspace,
            subject=str(run.workflow_id),
            link=reverse("dashboard:run", args=[run.pk]),
            data={},
            workflow=_workflow(run.workflow),
            step=step,
            error={"type": error.get("type", ""), "message": error.get("message", "")} if error else None,
        ),
        "ts": envelope["ts"],
        "run": {
            "id": str(run.pk),
            "status": envelope["type"].removeprefix("run."),
            "trigger": run.trigger,
            "started_at": _iso(run.started_at) if run.started_at else None,
            "finished_at": _iso(run.finished_at) if run.finished_at else None,
            "duration_seconds": data.get("duration_seconds"),
        },
    }


def run_events_hand_on(envelopes: list[dict]) -> None:
    """The engine's run events, after their transaction committed (the task workflows.events.publish
    sends to the `notifications` queue): matched against the notification rules, and counted by
    analytics (workflows.services.analytics_feed)."""
    runs = Run.objects.select_related("workflow", "workspace").prefetch_related("workflow__tag_set")
    by_id = {str(pk): run for pk, run in runs.in_bulk({envelope["run"] for envelope in envelopes}).items()}
    notable = [envelope for envelope in envelopes if envelope["type"] in RUN_EVENT_TYPES and envelope["run"] in by_id]
    if notable:
        events_match([run_event(envelope, by_id[envelope["run"]]) for envelope in notable])
    run_events_count(envelopes, by_id)


# What the engine's budgets hand on, per event type: a period crossed its threshold, or refused a step
# for the first time (the engine sends each once per budget and period).
BUDGET_EVENT_TYPES = ("budget.threshold", "budget.exceeded")


def budgets_link(workspace_id) -> str:
    return f"{reverse('dashboard:budgets')}?workspace={workspace_id}"


def budget_event(raised: dict, budget: Budget) -> dict:
    """The notification event of one budget event the engine raised: `raised` carries its type, the
    budget's period (`period_key`), the run whose step raised it and the figures at that moment
    (`spent`, `reserved`, and for `budget.exceeded` the refused call's `estimate`). `budget.workflow`
    and its tags are loaded. The budget is the subject: a rule's throttle counts by it, which keeps a
    run budget (a period per run) from notifying for every run that reaches it."""
    limit, spent = budget.limit, Decimal(raised["spent"])
    reserved = Decimal(raised.get("reserved") or 0)
    data = {
        "budget": str(budget.pk),
        "name": budget.name,
        "metric": budget.metric,
        "period": budget.period,
        "period_key": raised["period_key"],
        "limit": str(limit),
        "threshold": str(budget.threshold),
        "spent": str(spent),
        "reserved": str(reserved),
        "remaining": str(max(limit - spent - reserved, Decimal(0))),
        # Of the limit, in whole percent, as people say it (a zero limit is all spent).
        "percent": int(spent * 100 / limit) if limit else 100,
        "run": raised["run"],
    }
    if raised["type"] == "budget.exceeded":
        data["estimate"] = raised["estimate"]
    return {
        **_event(
            raised["type"],
            id_=f"budget:{budget.pk}:{raised['period_key']}:{raised['type'].removeprefix('budget.')}",
            workspace=budget.workspace,
            subject=str(budget.pk),
            link=budgets_link(budget.workspace_id),
            data=data,
            workflow=_workflow(budget.workflow) if budget.workflow else None,
        ),
        "ts": raised["ts"],
    }


def budget_events_hand_on(raised: list[dict]) -> None:
    """The budget events the engine raised, after their transaction committed (the task
    workflows.events.publish_budget_events sends to the `notifications` queue), matched against the
    notification rules. A budget deleted since is skipped: there is nothing left to link to."""
    budgets = Budget.objects.select_related("workspace", "workflow").prefetch_related("workflow__tag_set")
    by_id = {str(pk): budget for pk, budget in budgets.in_bulk({item["budget"] for item in raised}).items()}
    events = [
        budget_event(item, by_id[item["budget"]])
        for item in raised
        if item["type"] in BUDGET_EVENT_TYPES and item["budget"] in by_id
    ]
    if events:
        events_match(events)


def schedule_missed_submit(*, schedule: Schedule, slots: list[datetime]) -> None:
    """One `schedule.missed` for the slots one fire recorded missed (none: nothing), oldest first.
    `schedule.workflow.workspace` is loaded (schedule_lock)."""
    if not slots:
        return
    workflow = schedule.workflow
    first, last = _iso(slots[0]), _iso(slots[-1])
    event = _event(
        "schedule.missed",
        id_=f"schedule:{schedule.pk}:missed:{first}:{last}",
        workspace=workflow.workspace,
        subject=str(workflow.pk),
        link=_workflow_link(workflow.pk),
        data={"schedule": str(schedule.pk), "cron": schedule.cron, "count": len(slots), "first": first, "last": last},
        workflow=_workflow(workflow),
    )
    events_submit([event])


def webhook_rejected_submit(*, hook: WebhookTrigger, reason: str, detail: str, address: str) -> None:
    """A `webhook.rejected` for a refused delivery, unless one went out for this webhook and reason
    in the current minute: a refusal costs one Redis command, the first of a minute one more query
    and one broker message. `hook.workflow` is loaded (webhook_for_token)."""
    window = int(timezone.now().timestamp()) // REJECTED_EVENT_EVERY_SECONDS
    event_id = f"webhook:{hook.pk}:rejected:{reason}:{window}"
    if not throttle_cache.add(event_id, 1, timeout=REJECTED_EVENT_EVERY_SECONDS):
        return
    workflow = hook.workflow
    workspace = Workspace.objects.only("pk", "name").get(pk=workflow.workspace_id)
    event = _event(
        "webhook.rejected",
        id_=event_id,
        workspace=workspace,
        subject=str(workflow.pk),
        link=_workflow_link(workflow.pk),
        data={"reason": reason, "webhook": str(hook.pk), "remote_address": address, "detail": detail},
        workflow=_workflow(workflow),
        error={"type": reason, "message": detail},
    )
    events_submit([event])


def _credential_event(credential: Credential, now: datetime) -> dict:
    expires_at = _iso(credential.expires_at)
    expired = credential.expires_at <= now
    workspace = credential.workspace
    return _event(
        "credential.expiring",
        id_=f"credential:{credential.pk}:{expires_at}" + (":expired" if expired else ""),
        workspace=workspace,
        subject=str(credential.pk),
        link=f"{reverse('dashboard:workflows')}?workspace={workspace.pk}",
        # Names and dates only: the value is never read here.
        data={
            "credential": {"id": str(credential.pk), "name": credential.name, "kind": credential.kind},
            "expires_at": expires_at,
            "expired": expired,
            "days_left": round(max((credential.expires_at - now) / timedelta(days=1), 0), 1),
        },
    )


def credentials_expiring(now: datetime) -> Iterable[Credential]:
    """Credentials whose expiry is less than DWC_CREDENTIAL_EXPIRY_WARNING_DAYS away, or as long past."""
    window = timedelta(days=settings.DWC_CREDENTIAL_EXPIRY_WARNING_DAYS)
    rows = Credential.objects.filter(expires_at__gt=now - window, expires_at__lte=now + window)
    return (
        rows.select_related("workspace")
        .only("pk", "name", "kind", "expires_at", "workspace__id", "workspace__name")
        .order_by("expires_at", "pk")
    )


def credentials_expiry_submit(*, now: datetime | None = None) -> int:
    """Beat's round: a `credential.expiring` for each credential expiring within the warning window,
    and one more (`data.expired`) once it has expired. Ids name the credential and its expiry date, so
    the hourly repeats are dropped by the rules (they act on an event id once) and a new expiry date
    warns again. Expired credentials are reported for as long as the warning window, then left
    alone. Returns how many events were submitted."""
    now = now or timezone.now()
    events = [_credential_event(credential, now) for credential in credentials_expiring(now)]
    for start in range(0, len(events), EVENTS_PER_MESSAGE):
        events_submit(events[start : start + EVENTS_PER_MESSAGE])
    return len(events)
