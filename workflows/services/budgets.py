"""Budgets on language-model spending: list and read them (members), create, change and delete them
(admins and owners; audited), and what a period of one has spent, holds and has left.

A budget's body: `{name, metric: tokens|cost, period: day|month|run, limit, threshold, workflow,
active}`. `workflow` null limits the whole workspace; `period` run gives every run its own cap. The
engine enforces them (workflows.engine.budgets); days and months are UTC.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Count, Q, QuerySet
from django.http import Http404

from accounts.access import Role, ensure_role, workspaces_with_role
from accounts.models import User, Workspace
from audit.audited_changes import AuditedChanges
from audit.services import AnyRequest
from workflows.engine import budgets as enforcement
from workflows.models import Budget, BudgetUsage, Run, Workflow

Errors = dict[str, list[str]]

WRITABLE_FIELDS = ("name", "metric", "period", "limit", "threshold", "workflow", "active")
# Read-only fields a client may send back from a GET; they change nothing.
IGNORED_FIELDS = ("id", "workspace", "created_by", "created_at", "updated_at")
NAME_MAX_LENGTH = Budget._meta.get_field("name").max_length
LIMIT_MAX = Decimal("99999999999999")  # what the column holds (20 digits, 6 of them decimals)

NO_SUCH_BUDGET = "No such budget."
BODY_NOT_AN_OBJECT = "The body must be a JSON object."
UNKNOWN_FIELD = "Unknown field."
REQUIRED = "This field is required."
NAME_INVALID = f"A name of 1 to {NAME_MAX_LENGTH} characters, not only spaces."
NAME_TAKEN = "A budget with this name exists in the workspace."
CHOICE_INVALID = "One of: {choices}."
LIMIT_INVALID = f"A number from 0 to {LIMIT_MAX} (tokens, or cost in the price table's currency)."
THRESHOLD_INVALID = "A share of the limit from 0 to 1, such as 0.8."
WORKFLOW_INVALID = "The id of a workflow of the budget's workspace, or null."
ACTIVE_INVALID = "true or false."
RUN_NEEDS_RUN = "A run budget's usage is per run: name one with `run`."
RUN_INVALID = "The id of a run the budget applies to."


def budgets_for_user(user: User) -> QuerySet[Budget]:
    """The budgets of every workspace where `user` is a member."""
    workspaces = workspaces_with_role(user, Role.VIEWER)
    return Budget.objects.filter(workspace__in=workspaces).select_related("created_by", "workflow")


def budget_get(user: User, budget_id: Any) -> Budget:
    """The budget if `user` is a member of its workspace; Http404 alike for strangers and unknown ids."""
    try:
        budget = Budget.objects.select_related("workspace", "workflow", "created_by").filter(pk=budget_id).first()
    except (ValueError, ValidationError):
        budget = None
    if budget is None:
        raise Http404(NO_SUCH_BUDGET)
    ensure_role(user, budget.workspace, Role.VIEWER, not_found=NO_SUCH_BUDGET)
    return budget


def _decimal(value: Any, low: Decimal, high: Decimal, places: str) -> Decimal | None:
    """A number between `low` and `high`, rounded to the column's places (as it is stored and shown)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = Decimal(str(value))
        rounded = number.quantize(Decimal(places)) if number.is_finite() else None
    except InvalidOperation:
        return None
    return rounded if rounded is not None and low <= rounded <= high else None


def _fields(data: Any, *, workspace: Workspace, budget: Budget | None) -> dict:
    """The model fields a POST (budget None) or PATCH body sets, checked; ValidationError names the bad ones."""
    if not isinstance(data, dict):
        raise ValidationError({"non_field_errors": [BODY_NOT_AN_OBJECT]})
    errors: Errors = {name: [UNKNOWN_FIELD] for name in sorted(set(data) - {*WRITABLE_FIELDS, *IGNORED_FIELDS})}
    given = {name: data[name] for name in WRITABLE_FIELDS if name in data}
    if budget is None:
        errors.update({name: [REQUIRED] for name in ("name", "metric", "period", "limit") if name not in given})
    fields: dict[str, Any] = {}
    if "name" in given:
        name = given["name"]
        if not isinstance(name, str) or not name.strip() or len(name) > NAME_MAX_LENGTH:
            errors["name"] = [NAME_INVALID]
        fields["name"] = name
    for name, choices in (("metric", Budget.Metric.values), ("period", Budget.Period.values)):
        if name in given:
            if given[name] not in choices:
                errors[name] = [CHOICE_INVALID.format(choices=", ".join(choices))]
            fields[name] = given[name]
    if "limit" in given:
        fields["limit"] = _decimal(given["limit"], Decimal(0), LIMIT_MAX, "0.000001")
        if fields["limit"] is None:
            errors["limit"] = [LIMIT_INVALID]
    if "threshold" in given:
        fields["threshold"] = _decimal(given["threshold"], Decimal(0), Decimal(1), "0.001")
        if fields["threshold"] is None:
            errors["threshold"] = [THRESHOLD_INVALID]
    if "active" in given:
        if not isinstance(given["active"], bool):
            errors["active"] = [ACTIVE_INVALID]
        fields["active"] = given["active"]
    if "workflow" in given:
        fields["workflow"] = _workflow(given["workflow"], workspace, errors)
    if errors:
        raise ValidationError(errors)
    return fields


def _workflow(value: Any, workspace: Workspace, errors: Errors) -> Workflow | None:
    if value is None:
        return None
    try:
        workflow = Workflow.objects.filter(pk=uuid.UUID(str(value)), workspace=workspace).first()
    except ValueError:
        workflow = None
    if workflow is None:
        errors["workflow"] = [WORKFLOW_INVALID]
    return workflow


def _snapshot(budget: Budget) -> dict:
    snapshot = {name: getattr(budget, name) for name in WRITABLE_FIELDS if name != "workflow"}
    snapshot.update(limit=str(budget.limit), threshold=str(budget.threshold), workflow=str(budget.workflow_id or ""))
    return snapshot


AUDITED = AuditedChanges("budget", snapshot=_snapshot, name_taken=NAME_TAKEN)


def budget_create(*, actor: User, workspace: Workspace, data: Any, request: AnyRequest | None = None) -> Budget:
    """A new budget of `workspace` from its body (see the module); admins and owners.

    Raises Http404 for non-members, PermissionDenied below admin, ValidationError naming the bad fields."""
    ensure_role(actor, workspace, Role.ADMIN)
    fields = _fields(data, workspace=workspace, budget=None)
    return AUDITED.created(Budget(workspace=workspace, created_by=actor, **fields), actor=actor, request=request)


def budget_update(*, budget: Budget, actor: User, data: Any, request: AnyRequest | None = None) -> Budget:
    """Change the fields the body names (PATCH); admins and owners. Raises as budget_create. What its
    periods spent stays counted: a new limit applies to the next call."""
    ensure_role(actor, budget.workspace, Role.ADMIN)
    fields = _fields(data, workspace=budget.workspace, budget=budget)
    return AUDITED.updated(budget, fields, actor=actor, request=request)


def budget_delete(*, budget: Budget, actor: User, request: AnyRequest | None = None) -> None:
    """Delete a budget and what its periods counted; admins and owners."""
    ensure_role(actor, budget.workspace, Role.ADMIN)
    AUDITED.deleted(budget, actor=actor, request=request)


def budget_usage(budget: Budget, *, run_id: Any = None) -> dict:
    """The current period of the budget (or, for a run budget, the run's): spent, reserved by calls in
    flight, remaining, the generations counted and the steps refused. ValidationError naming `run`."""
    run = None
    if budget.period == Budget.Period.RUN:
        if run_id is None:
            raise ValidationError({"run": [RUN_NEEDS_RUN]})
        try:
            run = Run.objects.filter(pk=uuid.UUID(str(run_id)), workspace_id=budget.workspace_id).first()
        except ValueError:
            run = None
        if run is None or (budget.workflow_id and run.workflow_id != budget.workflow_id):
            raise ValidationError({"run": [RUN_INVALID]})
    usage, reserved = enforcement.usage_of(budget, run)
    return {
        "budget": budget.pk,
        "period": budget.period,
        "period_key": usage.period_key,
        "period_start": usage.period_start,
        "period_end": usage.period_end,
        "metric": budget.metric,
        "limit": budget.limit,
        "spent": usage.spent,
        "reserved": reserved,
        "remaining": max(budget.limit - usage.spent - reserved, Decimal(0)),
        "calls": usage.calls,
        "refused": usage.refused,
        "threshold_reached_at": usage.threshold_reached_at,
    }


@dataclass(frozen=True)
class Spending:
    """A budget's current period as the dashboard draws it. Shares are percent of the limit, capped so
    that spent and reserved fill at most the whole bar. A run budget has no current period: `runs`
    counts the runs it counted, `runs_refused` those it refused a step of, and the figures are None."""

    budget: Budget
    spent: Decimal | None = None
    reserved: Decimal | None = None
    remaining: Decimal | None = None
    refused: int = 0
    period_key: str = ""
    period_end: datetime | None = None
    threshold_reached: bool = False
    spent_share: float = 0.0
    reserved_share: float = 0.0
    runs: int = 0
    runs_refused: int = 0

    @property
    def threshold_share(self) -> float:
        return float(self.budget.threshold * 100)

    def shown(self, name: str) -> str:
        """A figure as people read it: whole tokens, or the cost without trailing zeros."""
        value = self.budget.limit if name == "limit" else getattr(self, name)
        if value is None:
            return ""
        return f"{value:.0f}" if self.budget.metric == Budget.Metric.TOKENS else f"{value.normalize():f}"

    @property
    def figures(self) -> dict[str, str]:
        return {name: self.shown(name) for name in ("limit", "spent", "reserved", "remaining")}


def _share(part: Decimal, limit: Decimal) -> float:
    if not limit:
        return 100.0 if part else 0.0
    return float(min(part / limit * 100, Decimal(100)))


def budgets_spending(*, workspace: Workspace, workflow: Workflow | None = None) -> list[Spending]:
    """The workspace's budgets (only those covering `workflow` when given: its own and the
    workspace-wide ones), each with its current period's spending. The caller has checked that the
    viewer is a member. A handful of queries however many budgets."""
    budgets = Budget.objects.filter(workspace=workspace).select_related("workflow")
    if workflow is not None:
        budgets = budgets.filter(Q(workflow__isnull=True) | Q(workflow=workflow))
    budgets = list(budgets.order_by("name"))
    usages = enforcement.current_usages(budgets)
    per_run = [budget.pk for budget in budgets if budget.period == Budget.Period.RUN]
    run_counts = {
        row["budget_id"]: row
        for row in BudgetUsage.objects.filter(budget_id__in=per_run)
        .values("budget_id")
        .annotate(runs=Count("pk"), refused=Count("pk", filter=Q(refused__gt=0)))
    }
    shown = []
    for budget in budgets:
        if budget.pk not in usages:
            counts = run_counts.get(budget.pk, {})
            shown.append(Spending(budget, runs=counts.get("runs", 0), runs_refused=counts.get("refused", 0)))
            continue
        usage, reserved = usages[budget.pk]
        spent_share = _share(usage.spent, budget.limit)
        shown.append(
            Spending(
                budget,
                spent=usage.spent,
                reserved=reserved,
                remaining=max(budget.limit - usage.spent - reserved, Decimal(0)),
                refused=usage.refused,
                period_key=usage.period_key,
                period_end=usage.period_end,
                threshold_reached=usage.threshold_reached_at is not None,
                spent_share=spent_share,
                reserved_share=min(_share(reserved, budget.limit), 100 - spent_share),
            )
        )
    return shown
