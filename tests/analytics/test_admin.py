"""Analytics in the admin: the event stream, insights and reports to browse, and insights dismissed
through their service (audited)."""

import uuid

import pytest
from django.utils import timezone

from accounts.models import User
from analytics.models import Event, Insight, Report
from analytics.services.recording import events_record
from audit.models import AuditEvent
from tests.factories import WorkspaceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client):
    client.force_login(User.objects.create_superuser(email="root@example.com", password="x-Long-enough-1"))
    return client


def insight_of(workspace, **fields) -> Insight:
    now = timezone.now()
    defaults = {"kind": "slowest_node", "subject": str(uuid.uuid4()), "severity": "info", "title": "Slow node"}
    return Insight.objects.create(workspace=workspace, period_start=now, period_end=now, **{**defaults, **fields})


def test_events_insights_and_reports_can_be_browsed_not_changed(operator):
    workspace = WorkspaceFactory()
    event = {"type": "login", "subject": "x", "workspace": workspace.pk, "ts": timezone.now(), "data": {}}
    events_record([event])
    Report.objects.create(workspace=workspace, name="weekly", metrics=["runs"])
    insight_of(workspace)

    for model in ("event", "insight", "report"):
        page = operator.get(f"/admin/analytics/{model}/")
        assert page.status_code == 200, model
        assert len(page.context["cl"].result_list) == 1
    assert operator.get("/admin/analytics/report/add/").status_code == 403
    assert operator.get(f"/admin/analytics/event/{Event.objects.get().pk}/delete/").status_code == 403


def test_the_dismiss_action_goes_through_the_service_and_is_audited(operator):
    workspace = WorkspaceFactory()
    opened, resolved = insight_of(workspace), insight_of(workspace, status="resolved")

    page = operator.post(
        "/admin/analytics/insight/",
        {"action": "dismiss", "_selected_action": [str(opened.pk), str(resolved.pk)]},
        follow=True,
    )

    assert page.status_code == 200
    assert "Dismissed 1 insight(s)." in page.content.decode()
    opened.refresh_from_db()
    resolved.refresh_from_db()
    assert (opened.status, resolved.status) == ("dismissed", "resolved")
    assert AuditEvent.objects.filter(action="insight.dismissed").count() == 1
