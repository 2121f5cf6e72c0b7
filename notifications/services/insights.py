"""The `insight.opened` events: analytics open insights (analytics.services.insights) and send
`analytics.signals.insight_opened` once their refresh commits; this receiver, connected in
NotificationsConfig.ready(), hands the high-severity ones to the rules. Analytics know nothing of
notifications, hence the signal.

Notifications may not read the workflows app's tables: an insight's workflow is named by its id's first
characters, and it has no tags (a rule filtering by tags does not take insight events).
"""

from datetime import UTC

from analytics.models import Insight
from notifications.services.events import events_submit


def insight_event(insight: Insight) -> dict:
    """The event of a newly opened insight, in the shape notifications.services.events documents."""
    workflow = None
    if insight.workflow_id:
        workflow = {"id": str(insight.workflow_id), "name": f"workflow {str(insight.workflow_id)[:8]}", "tags": []}
    return {
        "type": "insight.opened",
        "id": f"insight:{insight.pk}",
        "ts": insight.opened_at.astimezone(UTC).isoformat(),
        "workspace": {"id": str(insight.workspace_id), "name": insight.workspace.name},
        "subject": f"{insight.kind}:{insight.subject}",
        "workflow": workflow,
        "run": None,
        "step": None,
        "error": None,
        "link": insight.link,
        "data": {
            "id": str(insight.pk),
            "kind": insight.kind,
            "severity": insight.severity,
            "title": insight.title,
            "numbers": insight.numbers,
            "period_start": insight.period_start.astimezone(UTC).isoformat(),
            "period_end": insight.period_end.astimezone(UTC).isoformat(),
        },
    }


def insights_opened_submit(sender, *, insights: list[Insight], **kwargs) -> None:
    """Receiver of insight_opened: an `insight.opened` event per new high-severity insight (warnings and
    infos are for the analytics page, not for waking people)."""
    events_submit([insight_event(insight) for insight in insights if insight.severity == Insight.Severity.HIGH])
