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


def test_other_packages_admins_that_would_bypass_the_trail_are_for_browsing_only(operator):
    from django_celery_beat.models import CrontabSchedule, PeriodicTask
    from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
    from rest_framework_simplejwt.tokens import RefreshToken

    crontab = CrontabSchedule.objects.create(minute="0", hour="9")
    task = PeriodicTask.objects.create(name="nightly", task="workflows.tasks.recover_runs", crontab=crontab)
    refresh = RefreshToken.for_user(UserFactory())
    refresh.blacklist()
    entry = BlacklistedToken.objects.get()
    for url, obj in [
        ("/admin/django_celery_beat/periodictask/", task),
        ("/admin/django_celery_beat/crontabschedule/", crontab),
        ("/admin/token_blacklist/outstandingtoken/", OutstandingToken.objects.get()),
        ("/admin/token_blacklist/blacklistedtoken/", entry),
    ]:
        assert operator.get(url).status_code == 200, url
        assert operator.get(f"{url}{obj.pk}/change/").status_code == 200, url  # the read-only view
        assert operator.get(f"{url}add/").status_code == 403, url
        assert operator.post(f"{url}{obj.pk}/delete/", {"post": "yes"}).status_code == 403, url
    disabled = operator.post(
        "/admin/django_celery_beat/periodictask/", {"action": "disable_tasks", "_selected_action": [str(task.pk)]}
    )
    assert disabled.status_code in (200, 302)
    task.refresh_from_db()
    assert task.enabled
    assert BlacklistedToken.objects.filter(pk=entry.pk).exists()
