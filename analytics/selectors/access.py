"""Whose figures, reports and insights a caller may read: their workspaces' (viewers and above)."""

import uuid
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import Http404

from accounts.access import Role, ensure_role, workspaces_with_role
from accounts.models import User
from analytics.models import Insight, Report, Rollup, WorkspaceRollup
from analytics.services.insights import NO_SUCH_INSIGHT


@dataclass(frozen=True)
class Scope:
    """Whose figures: workspaces (ids or a query of them), narrowed to one workspace or workflow."""

    workspaces: object
    workspace: uuid.UUID | None = None
    workflow: uuid.UUID | None = None

    def rows(self, model) -> QuerySet:
        rows = model.objects.filter(workspace_id__in=self.workspaces)
        if self.workspace is not None:
            rows = rows.filter(workspace_id=self.workspace)
        if self.workflow is not None:
            rows = rows.filter(workflow_id=self.workflow)
        return rows

    def run_rows(self, *, per_workflow: bool = False) -> QuerySet:
        """The rollups of the runs: a workflow's Rollup rows when narrowed to one (or asked `per_workflow`),
        else the workspaces' WorkspaceRollup rows, one per bucket instead of one per workflow."""
        return self.rows(Rollup if per_workflow or self.workflow is not None else WorkspaceRollup)


def scope_for_user(user: User, *, workspace: uuid.UUID | None = None, workflow: uuid.UUID | None = None) -> Scope:
    return Scope(workspaces_with_role(user, Role.VIEWER).values("pk"), workspace, workflow)


NO_SUCH_REPORT = "No such report."


def reports_for_user(user: User) -> QuerySet[Report]:
    """Saved reports of the workspaces where `user` is a member (viewers list and run them)."""
    return Report.objects.filter(workspace__in=workspaces_with_role(user, Role.VIEWER)).select_related("created_by")


def report_get(user: User, report_id: Any) -> Report:
    """The report if `user` is a member of its workspace; Http404 alike for strangers and unknown ids."""
    try:
        report = Report.objects.select_related("workspace", "created_by").filter(pk=report_id).first()
    except (ValueError, ValidationError):
        report = None
    if report is None:
        raise Http404(NO_SUCH_REPORT)
    ensure_role(user, report.workspace, Role.VIEWER, not_found=NO_SUCH_REPORT)
    return report


INSIGHT_STATUSES = (*Insight.Status.values, "all")
STATUS_INVALID = f"One of: {', '.join(INSIGHT_STATUSES)}."
SEVERITY_INVALID = f"One of: {', '.join(Insight.Severity.values)}."


def insights_for_user(user: User, *, workspace=None, workflow=None, status: str = "open", severity=None) -> QuerySet:
    """The insights of the caller's workspaces (viewers and above), newest first: `status` open (the
    default), dismissed, resolved or all. ValidationError naming a bad status or severity."""
    if status not in INSIGHT_STATUSES:
        raise ValidationError({"status": [STATUS_INVALID]})
    if severity is not None and severity not in Insight.Severity.values:
        raise ValidationError({"severity": [SEVERITY_INVALID]})
    insights = Insight.objects.filter(workspace__in=workspaces_with_role(user, Role.VIEWER))
    if workspace is not None:
        insights = insights.filter(workspace_id=workspace)
    if workflow is not None:
        insights = insights.filter(workflow_id=workflow)
    if status != "all":
        insights = insights.filter(status=status)
    if severity is not None:
        insights = insights.filter(severity=severity)
    return insights.order_by("-opened_at", "pk")


def insight_get(insight_id) -> Insight:
    """The insight of that id, with its workspace; Http404 for an unknown one. Whether the caller may see
    or change it is the service's question (a stranger's insight is a 404 too)."""
    try:
        insight_id = uuid.UUID(str(insight_id))
    except ValueError as error:
        raise Http404(NO_SUCH_INSIGHT) from error
    insight = Insight.objects.select_related("workspace").filter(pk=insight_id).first()
    if insight is None:
        raise Http404(NO_SUCH_INSIGHT)
    return insight
