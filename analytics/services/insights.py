"""Automatic insights: what the rollups say that a person should know, found for every workspace by a
beat task (analytics.tasks.insights_refresh) and kept as Insight rows.

The rules are in analytics.services.insight_rules. `insights_refresh` compares what the rules find
with the insights not resolved: one still true is updated (a dismissed one stays dismissed), one no
longer true is resolved, a new one is opened, and `analytics.signals.insight_opened` is sent with the new
ones once the refresh commits (the notifications app turns the high-severity ones into `insight.opened`
events). docs/analytics.md ("Insights") states each rule.
"""

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from accounts.access import Role, ensure_role
from accounts.models import User, Workspace
from analytics.models import Insight
from analytics.services.insight_rules import Finding, findings_at
from analytics.services.recording import lock_for_transaction
from analytics.signals import insight_opened
from audit.services import AnyRequest, audit_record

Status = Insight.Status

# One refresh at a time (two int4 keys: "analytics", "insights"): a second one waits and then sees the
# first one's insights, so two beats at once neither duplicate an insight nor trip over the constraint.
INSIGHTS_LOCK = (0x616E616C, 0x696E7369)

ANALYTICS_LINK = "/dashboard/analytics/"
WORKFLOW_LINK = "/dashboard/workflows/{id}/"

NO_SUCH_INSIGHT = "No such insight."


def insights_refresh(now: datetime | None = None) -> dict:
    """Find the insights of every workspace as of `now` and bring the Insight rows up to date, in one
    transaction, one refresh at a time. Sends `insight_opened` with the new ones after the commit.
    Returns how many were opened, updated and resolved."""
    now = now or timezone.now()
    with transaction.atomic():
        lock_for_transaction(INSIGHTS_LOCK)
        findings = {finding.key: finding for finding in findings_at(now)}
        # Insight.workspace is a foreign key: the rollups of a deleted workspace tell nobody anything.
        workspaces = {
            str(pk) for pk in Workspace.objects.filter(pk__in={key[0] for key in findings}).values_list("pk", flat=True)
        }
        unresolved = Insight.objects.select_for_update().exclude(status=Status.RESOLVED).order_by("pk")
        current = {(str(insight.workspace_id), insight.kind, insight.subject): insight for insight in unresolved}
        opened, updated = [], 0
        for key, finding in findings.items():
            if finding.workspace_id not in workspaces:
                continue
            insight = current.pop(key, None)
            if insight is None:
                insight = Insight(workspace_id=finding.workspace_id, kind=finding.kind, subject=finding.subject)
                opened.append(insight)
            else:
                updated += 1
            _fill(insight, finding)
            insight.save()
        for insight in current.values():
            insight.status, insight.resolved_at = Status.RESOLVED, now
            insight.save(update_fields=["status", "resolved_at", "updated_at"])
        if opened:
            transaction.on_commit(lambda: insight_opened.send(sender=Insight, insights=opened))
    return {"opened": len(opened), "updated": updated, "resolved": len(current)}


def _fill(insight: Insight, finding: Finding) -> None:
    insight.workflow_id = finding.workflow_id
    insight.severity, insight.title, insight.numbers = finding.severity, finding.title[:300], finding.numbers
    insight.period_start, insight.period_end = finding.period.start, finding.period.end
    insight.link = WORKFLOW_LINK.format(id=finding.workflow_id) if finding.workflow_id else ANALYTICS_LINK


def insight_dismiss(*, insight: Insight, actor: User, request: AnyRequest | None = None) -> Insight:
    """Dismiss an open insight (editors and above): it stays dismissed while its condition holds, and no
    one is notified of it again; resolved once the condition ends. Dismissing a dismissed or resolved
    insight changes nothing. Http404 for a stranger, PermissionDenied for a viewer."""
    ensure_role(actor, insight.workspace, Role.EDITOR, not_found=NO_SUCH_INSIGHT)
    with transaction.atomic():
        insight = Insight.objects.select_for_update().get(pk=insight.pk)
        if insight.status != Status.OPEN:
            return insight
        insight.status, insight.dismissed_at, insight.dismissed_by = Status.DISMISSED, timezone.now(), actor
        insight.save(update_fields=["status", "dismissed_at", "dismissed_by", "updated_at"])
        audit_record(
            action="insight.dismissed",
            actor=actor,
            workspace=insight.workspace_id,
            target=insight,
            changes={"status": [Status.OPEN, Status.DISMISSED]},
            request=request,
        )
    return insight
