"""The services hand their events to analytics after their transaction commits: logins, API-key use
and notification deliveries here; webhooks, schedules and approvals with their own tests
(tests/workflows)."""

import pytest
from rest_framework.test import APIClient

from accounts.api_keys import api_key_create
from accounts.models import Membership
from analytics.models import Event
from analytics.services.recording import rollups_catch_up
from notifications.models import Channel
from notifications.services.deliveries import delivery_create, delivery_send
from tests.conftest import client_for
from tests.factories import PASSWORD, UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def member(db):
    user = UserFactory()
    for workspace in (WorkspaceFactory(), WorkspaceFactory()):
        Membership.objects.create(workspace=workspace, user=user, role="owner")
    return user


def test_a_login_is_counted_in_each_workspace_of_the_person(member, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        answer = APIClient().post("/api/v3/auth/token", {"email": member.email, "password": PASSWORD}, format="json")
    assert answer.status_code == 200, answer.content

    logins = Event.objects.filter(type="login")
    assert sorted(event.workspace_id for event in logins) == sorted(
        member.memberships.values_list("workspace_id", flat=True)
    )
    assert logins.count() >= 2
    assert {event.data["method"] for event in logins} == {"api"}
    rollups_catch_up()
    members = client_for(member).get("/api/v3/analytics/timeseries", {"metric": "active_members", "range": "1h"})
    assert sum(point["value"] for point in members.json()["points"]) == 1


def test_a_wrong_password_is_not_a_login(member, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        APIClient().post("/api/v3/auth/token", {"email": member.email, "password": "nope"}, format="json")
    assert not Event.objects.filter(type="login").exists()


def test_an_api_key_is_counted_once_a_minute_in_its_workspace(member, django_capture_on_commit_callbacks):
    workspace = member.memberships.first().workspace
    _key, raw_key = api_key_create(user=member, name="ci", scopes=["read"], workspace_id=workspace.pk)
    api = APIClient(HTTP_X_API_KEY=raw_key)
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(3):
            assert api.get("/api/v3/workflows").status_code == 200

    [used] = Event.objects.filter(type="api_key.used")
    assert (used.workspace_id, used.data["user"]) == (workspace.pk, str(member.pk))


def test_deliveries_are_counted_when_sent_or_given_up(member, django_capture_on_commit_callbacks):
    workspace = member.memberships.first().workspace
    inbox = Channel.objects.create(workspace=workspace, name="inbox", kind=Channel.Kind.IN_APP)
    broken = Channel.objects.create(
        workspace=workspace, name="hook", kind=Channel.Kind.WEBHOOK, config={"url": "http://127.0.0.1:9/none"}
    )
    with django_capture_on_commit_callbacks(execute=True):
        delivery_send(delivery_id=delivery_create(channel=inbox, subject="Hi", recipient=member, send_now=True).pk)
        failing = delivery_create(channel=broken, subject="Hi", send_now=True)
        failing.max_attempts = 1
        failing.save(update_fields=["max_attempts"])
        delivery_send(delivery_id=failing.pk)

    counted = sorted((event.type, event.data["channel"]) for event in Event.objects.all())
    assert counted == [("notification.delivered", "in_app"), ("notification.failed", "webhook")]
