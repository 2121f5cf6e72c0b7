import pytest

from audit.models import AuditEvent
from audit.services import audit_record
from tests.factories import UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/audit/auditevent/"


@pytest.fixture
def operator(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def test_the_admin_lists_filters_and_shows_events_but_changes_nothing(operator):
    workspace = WorkspaceFactory(name="Ops")
    login = audit_record(action="auth.login_failed", actor="mallory@example.com")
    created = audit_record(action="workflow.created", workspace=workspace, target_type="workflow", target_id="w-1")
    expected = {
        "": set(AuditEvent.objects.values_list("pk", flat=True)),  # the operator's own login too
        "?action=workflow.created": {created.pk},
        "?actor_type=anonymous": {login.pk},
        f"?workspace__id__exact={workspace.pk}": {created.pk},
        "?q=mallory": {login.pk},
        "?q=w-1": {created.pk},
    }
    for query, ids in expected.items():
        answer = operator.get(CHANGELIST + query)
        assert answer.status_code == 200, query
        assert {event.pk for event in answer.context["cl"].result_list} == ids, query
    page = operator.get(f"{CHANGELIST}{created.pk}/change/")
    assert page.status_code == 200
    assert "workflow.created" in page.content.decode()
    assert operator.get(f"{CHANGELIST}add/").status_code == 403
    assert operator.post(f"{CHANGELIST}{created.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.filter(pk__in=[login.pk, created.pk]).count() == 2
