"""Budgets around a document step's call to a language model: before the call its estimated spending
is reserved in every budget that applies (or the step fails with `budget_exceeded`, nothing called);
after it the actual usage replaces the reservation.

Each applicable budget's period row (BudgetUsage) is locked, in a fixed order, while a call reserves:
of fifty steps racing for a budget with room for ten calls, ten reserve and forty are refused. A
reservation whose step is no longer running at its attempt (its worker died mid-call) is released by
the engine's recovery. This is the one module that writes the budget tables.

Crossing a threshold and the first refusal of a period are handed to the notification rules
(`budget.threshold`, `budget.exceeded`, through workflows.events), each once per budget and period:
forty steps refused by a spent budget make one notification, not forty.
"""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, Sum
from django.utils import timezone

from analytics.services.recording import events_record_after_commit
from workflows import events
from workflows.engine.errors import PermanentError
from workflows.models import Budget, BudgetReservation, BudgetUsage, Run, StepRun

logger = logging.getLogger(__name__)

BUDGET_EXCEEDED = (
    "Budget {name!r} ({limit} {metric} per {period}) would be exceeded: {spent} spent, {reserved} reserved by "
    "calls in flight, and this call may take {amount}."
)


@dataclass(frozen=True)
class Spending:
    """What a call may spend, or did: tokens in and out, and their cost."""

    tokens: int
    cost: Decimal

    def of(self, metric: str) -> Decimal:
        return Decimal(self.tokens) if metric == Budget.Metric.TOKENS else self.cost


class BudgetExceeded(PermanentError):
    """The call would cross a budget's limit: the step fails before calling the model."""

    type_name = "budget_exceeded"


@dataclass(frozen=True)
class Reservation:
    ids: list[int]


@dataclass(frozen=True)
class Crossing:
    """A budget's period that crossed its threshold with this call."""

    budget: Budget
    usage: BudgetUsage


def _period(budget: Budget, run: Run | None, now: datetime) -> tuple[str, datetime | None, datetime | None]:
    """The period of `budget` a call of `run` at `now` counts in: its key, start and end (UTC)."""
    if budget.period == Budget.Period.RUN:
        return str(run.pk), None, None
    now = now.astimezone(UTC)
    if budget.period == Budget.Period.DAY:
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        end = start + timedelta(days=1)
        return start.date().isoformat(), start, end
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start.strftime("%Y-%m"), start, end


def applicable(run: Run) -> list[Budget]:
    """The active budgets of the run's workspace that cover its workflow, in lock order."""
    budgets = Budget.objects.filter(workspace_id=run.workspace_id, active=True)
    return list(budgets.filter(Q(workflow__isnull=True) | Q(workflow_id=run.workflow_id)).order_by("pk"))


def usage_of(budget: Budget, run: Run | None = None, now: datetime | None = None) -> tuple[BudgetUsage, Decimal]:
    """The budget's period row for a call of `run` (any run for a day or month budget) now, and what
    calls in flight hold of it; a period nothing counted in yet is an unsaved row of zeros."""
    if run is None and budget.period == Budget.Period.RUN:
        raise ValueError("a run budget's usage is per run")
    key, start, end = _period(budget, run, now or timezone.now())
    usage = BudgetUsage.objects.filter(budget=budget, period_key=key).first()
    if usage is None:
        return BudgetUsage(budget=budget, period_key=key, period_start=start, period_end=end), Decimal(0)
    held = usage.reservations.aggregate(total=Sum("amount"))["total"] or Decimal(0)
    return usage, held


def current_usages(budgets: list[Budget], now: datetime | None = None) -> dict[Any, tuple[BudgetUsage, Decimal]]:
    """`usage_of` for many day and month budgets at once (two queries), by budget id; run budgets are
    left out (their periods are runs)."""
    now = now or timezone.now()
    periods = {budget.pk: _period(budget, None, now) for budget in budgets if budget.period != Budget.Period.RUN}
    wanted = Q(pk__in=[])
    for budget_id, (key, _, _) in periods.items():
        wanted |= Q(budget_id=budget_id, period_key=key)
    rows = {usage.budget_id: usage for usage in BudgetUsage.objects.filter(wanted)} if periods else {}
    held = dict(
        BudgetReservation.objects.filter(usage__in=[usage.pk for usage in rows.values()])
        .values_list("usage_id")
        .annotate(total=Sum("amount"))
    )
    found = {}
    for budget in budgets:
        if budget.pk not in periods:
            continue
        key, start, end = periods[budget.pk]
        usage = rows.get(budget.pk) or BudgetUsage(budget=budget, period_key=key, period_start=start, period_end=end)
        found[budget.pk] = (usage, held.get(usage.pk, Decimal(0)) if usage.pk else Decimal(0))
    return found


def reserve(run: Run, step: StepRun, budgets: list[Budget], estimate: Spending) -> Reservation:
    """Reserve `estimate` in each of `budgets` (those applicable to the step's run, in lock order), or
    raise BudgetExceeded naming the first budget it would cross (nothing reserved then)."""
    if not budgets:
        return Reservation([])
    now = timezone.now()
    # The periods' rows are made (committed) before the locking transaction: a refusal rolls that back,
    # and still counts on the row.
    usages = []
    for budget in budgets:
        key, start, end = _period(budget, run, now)
        usage, _ = BudgetUsage.objects.get_or_create(
            budget=budget, period_key=key, defaults={"period_start": start, "period_end": end}
        )
        usages.append((budget, usage.pk))
    refused: tuple[Budget, BudgetUsage, Decimal] | None = None
    with transaction.atomic():
        locked = BudgetUsage.objects.select_for_update().in_bulk([pk for _, pk in usages])
        ids = []
        for budget, usage_id in usages:
            usage = locked[usage_id]
            amount = estimate.of(budget.metric)
            held = usage.reservations.aggregate(total=Sum("amount"))["total"] or Decimal(0)
            if usage.spent + held + amount > budget.limit:
                refused = (budget, usage, held)
                transaction.set_rollback(True)
                break
            reservation = BudgetReservation.objects.create(usage=usage, step=step, attempt=step.attempt, amount=amount)
            ids.append(reservation.pk)
    if refused is None:
        return Reservation(ids)
    budget, usage, held = refused
    amount = estimate.of(budget.metric)
    # The period's first refusal is the one that notifies: of refusals racing, the row's lock lets one
    # UPDATE see `refused=0`; the others count on.
    if BudgetUsage.objects.filter(pk=usage.pk, refused=0).update(refused=1):
        events.publish_budget_events([_raised("budget.exceeded", budget, usage, run, held=held, estimate=amount)])
    else:
        BudgetUsage.objects.filter(pk=usage.pk).update(refused=F("refused") + 1)
    raise BudgetExceeded(
        BUDGET_EXCEEDED.format(
            name=budget.name,
            limit=_shown(budget.limit, budget.metric),
            metric=budget.metric,
            period=budget.period,
            spent=_shown(usage.spent, budget.metric),
            reserved=_shown(held, budget.metric),
            amount=_shown(amount, budget.metric),
        ),
        details={
            "budget": {"id": str(budget.pk), "name": budget.name, "metric": budget.metric, "period": budget.period},
            "limit": str(budget.limit),
            "spent": str(usage.spent),
            "reserved": str(held),
            "estimate": str(amount),
        },
    )


def _shown(value: Decimal, metric: str) -> str:
    return f"{value:.0f}" if metric == Budget.Metric.TOKENS else f"{value.normalize():f}"


def settle(reservation: Reservation, actual: Spending | None) -> list[Crossing]:
    """Replace the reservation by what the call spent (`actual`; None when it failed before spending):
    the budgets' periods count it, and those that crossed their threshold with it say so (once per
    period)."""
    if not reservation.ids:
        return []
    crossings = []
    with transaction.atomic():
        held = list(BudgetReservation.objects.filter(pk__in=reservation.ids).values_list("usage_id", flat=True))
        usages = BudgetUsage.objects.select_for_update().select_related("budget").filter(pk__in=held).order_by("pk")
        for usage in usages:
            BudgetReservation.objects.filter(pk__in=reservation.ids, usage=usage).delete()
            if actual is None:
                continue
            budget = usage.budget
            usage.spent += actual.of(budget.metric)
            usage.calls += 1
            fields = ["spent", "calls", "updated_at"]
            if usage.threshold_reached_at is None and usage.spent >= budget.limit * budget.threshold:
                usage.threshold_reached_at = timezone.now()
                fields.append("threshold_reached_at")
                crossings.append(Crossing(budget, usage))
            usage.save(update_fields=fields)
    return crossings


def stale_released() -> int:
    """Release the reservations of attempts that are no longer running (their worker died, or the step
    was cancelled or timed out mid-call): their calls will never settle. Returns how many."""
    running = StepRun.objects.filter(pk=OuterRef("step_id"), attempt=OuterRef("attempt"), status=StepRun.Status.RUNNING)
    released, _ = BudgetReservation.objects.exclude(Exists(running)).delete()
    return released


def attempt_released(step_id: Any, attempt: int) -> int:
    """Release what one attempt of a step reserved (its worker died mid-call: the call will never
    settle). Recovery calls it in the transaction that re-queues the step, so the next attempt never
    finds the dead one's reservation holding its room. Returns how many."""
    released, _ = BudgetReservation.objects.filter(step_id=step_id, attempt=attempt).delete()
    return released


def _raised(
    type_: str, budget: Budget, usage: BudgetUsage, run: Run, *, held: Decimal, estimate: Decimal | None = None
) -> dict:
    """A budget event for the notification rules, as plain JSON (workflows.services.notices adds the
    budget's name, workspace and workflow)."""
    raised = {
        "type": type_,
        "budget": str(budget.pk),
        "period_key": usage.period_key,
        "run": str(run.pk),
        # Six places, as the columns hold them (an estimate of tokens is a whole number).
        "spent": f"{usage.spent:.6f}",
        "reserved": f"{held:.6f}",
        "ts": timezone.now().isoformat(),
    }
    if estimate is not None:
        raised["estimate"] = f"{estimate:.6f}"
    return raised


def threshold_counted(run: Run, crossing: Crossing) -> None:
    """Count a budget period's crossing of its threshold as the analytics event `budget.threshold`
    (once per budget and period: the event is unique by its subject), and hand it to the notification
    rules (settle reports a crossing once per period: `threshold_reached_at`)."""
    budget, usage = crossing.budget, crossing.usage
    events_record_after_commit(
        [
            {
                "type": "budget.threshold",
                "subject": f"{budget.pk}:{usage.period_key}",
                "workspace": str(budget.workspace_id),
                "workflow": str(budget.workflow_id or run.workflow_id),
                "ts": usage.threshold_reached_at,
                "data": {
                    "budget": str(budget.pk),
                    "name": budget.name,
                    "metric": budget.metric,
                    "period": budget.period,
                    "period_key": usage.period_key,
                    "limit": str(budget.limit),
                    "threshold": str(budget.threshold),
                    "spent": str(usage.spent),
                    "run": str(run.pk),
                },
            }
        ]
    )
    held = usage.reservations.aggregate(total=Sum("amount"))["total"] or Decimal(0)
    events.publish_budget_events([_raised("budget.threshold", budget, usage, run, held=held)])
    logger.info("budget threshold reached", extra={"budget": str(budget.pk), "period": usage.period_key})
