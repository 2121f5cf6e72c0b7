"""The notifications API: who may manage channels and deliveries, the inbox of each user, the 400s
bad input gets, and the audit trail every change leaves."""

import pytest

from audit.models import AuditEvent
from notifications.models import Channel, Delivery, Notification
from notifications.services.deliveries import delivery_create, delivery_send
from tests.conftest import client_for
from tests.notifications.conftest import channel_of
from workflows.services.credentials import credential_save

pytestmark = pytest.mark.django_db

CHANNELS = "/api/v3/notifications/channels"
DELIVERIES = "/api/v3/notifications/deliveries"
INBOX = "/api/v3/notifications"


def problem(answer, status: int) -> dict:
    assert answer.status_code == status, (answer.status_code, answer.content[:500])
    assert answer["Content-Type"].startswith("application/problem+json")
    return answer.json()


def test_an_admin_creates_changes_and_deletes_a_channel_and_each_change_is_audited(team, httpserver):
    admin = client_for(team["admin"])
    workspace = team["workspace"]
    body = {
        "workspace": str(workspace.pk),
        "name": "Ops hook",
        "kind": "webhook",
        "config": {"url": "https://x.example/h"},
    }

    created = admin.post(CHANNELS, body, format="json")
    assert created.status_code == 201, created.content
    channel = created.json()
    assert (channel["name"], channel["kind"], channel["enabled"], channel["credential"]) == (
        "Ops hook",
        "webhook",
        True,
        "",
    )

    changed = admin.patch(f"{CHANNELS}/{channel['id']}", {"enabled": False, "kind": "webhook"}, format="json")
    assert (changed.status_code, changed.json()["enabled"]) == (200, False)
    assert admin.get(f"{CHANNELS}/{channel['id']}").json()["enabled"] is False
    assert [c["name"] for c in admin.get(CHANNELS).json()["results"]] == ["Ops hook"]

    assert admin.delete(f"{CHANNELS}/{channel['id']}").status_code == 204
    assert not Channel.objects.exists()
    events = AuditEvent.objects.filter(target_id=channel["id"]).order_by("id")
    assert [(e.action, e.actor_label) for e in events] == [
        ("notification_channel.created", team["admin"].email),
        ("notification_channel.updated", team["admin"].email),
        ("notification_channel.deleted", team["admin"].email),
    ]
    assert events[1].changes == {"enabled": [True, False]}


def test_editors_and_viewers_get_403_and_strangers_404(team):
    channel = channel_of(team["workspace"], "in_app")
    for role in ("editor", "viewer"):
        member = client_for(team[role])
        assert member.get(CHANNELS).json()["count"] == 0
        problem(member.get(f"{CHANNELS}/{channel.pk}"), 403)
        problem(member.patch(f"{CHANNELS}/{channel.pk}", {"name": "x"}, format="json"), 403)
        problem(member.post(f"{CHANNELS}/{channel.pk}/test"), 403)
        body = {"workspace": str(team["workspace"].pk), "name": "n", "kind": "in_app"}
        problem(member.post(CHANNELS, body, format="json"), 403)
    stranger = client_for(team["stranger"])
    assert problem(stranger.get(f"{CHANNELS}/{channel.pk}"), 404)["detail"] == "No such channel."
    problem(stranger.delete(f"{CHANNELS}/{channel.pk}"), 404)
    assert Channel.objects.filter(pk=channel.pk, name="in_app").exists()


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"name": "a", "kind": "fax"}, {"kind"}),
        ({"name": " ", "kind": "in_app"}, {"name"}),
        ({"kind": "in_app"}, {"name"}),
        ({"name": "a", "kind": "webhook"}, {"config"}),
        ({"name": "a", "kind": "webhook", "config": {"url": "file:///etc/passwd"}}, {"config.url"}),
        ({"name": "a", "kind": "slack", "config": {}}, {"config.url"}),
        ({"name": "a", "kind": "in_app", "credential": "x"}, {"credential"}),
        (
            {"name": "a", "kind": "webhook", "config": {"url": "https://x.example"}, "credential": "nope"},
            {"credential"},
        ),
        ({"name": "a", "kind": "in_app", "secret": "x"}, {"secret"}),
        ({"name": "a", "kind": "in_app", "enabled": "yes"}, {"enabled"}),
        ([1, 2], {"non_field_errors"}),
    ],
)
def test_bad_channel_bodies_get_a_400_naming_the_field(team, body, fields):
    admin = client_for(team["admin"])
    if isinstance(body, dict):
        body = {**body, "workspace": str(team["workspace"].pk)}
    answer = problem(admin.post(CHANNELS, body, format="json"), 400)
    assert set(answer["errors"]) >= fields, answer["errors"]
    assert not Channel.objects.exists()


def test_a_credential_of_another_kind_is_refused_and_a_taken_name_too(team):
    admin = client_for(team["admin"])
    workspace = team["workspace"]
    credential_save(workspace_id=workspace.pk, name="bearer", kind="http_bearer", value={"token": "t"})
    body = {"workspace": str(workspace.pk), "name": "s", "kind": "slack", "credential": "bearer"}
    assert "credential" in problem(admin.post(CHANNELS, body, format="json"), 400)["errors"]
    channel_of(workspace, "in_app", name="taken")
    body = {"workspace": str(workspace.pk), "name": "taken", "kind": "in_app"}
    assert problem(admin.post(CHANNELS, body, format="json"), 400)["errors"] == {
        "name": ["A channel with this name exists."]
    }


def test_testing_a_channel_sends_now_and_returns_the_delivery(team, httpserver):
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    channel = channel_of(team["workspace"], "slack", {"url": httpserver.url_for("/hook")})

    answer = client_for(team["admin"]).post(f"{CHANNELS}/{channel.pk}/test")

    assert answer.status_code == 200, answer.content
    delivery = answer.json()
    assert (delivery["status"], delivery["response_code"], delivery["attempts"]) == ("sent", 200, 1)
    assert httpserver.log[0][0].get_json()["text"] == "Test notification"
    assert AuditEvent.objects.filter(action="notification_channel.tested", target_id=str(channel.pk)).exists()


def test_a_failing_test_is_dead_at_once_with_the_receivers_answer(team, httpserver):
    httpserver.expect_request("/hook").respond_with_data("no_service", status=404)
    channel = channel_of(team["workspace"], "discord", {"url": httpserver.url_for("/hook")})
    delivery = client_for(team["admin"]).post(f"{CHANNELS}/{channel.pk}/test").json()
    assert (delivery["status"], delivery["response_code"]) == ("dead", 404)
    assert "no_service" in delivery["error"]


def test_testing_an_in_app_channel_notifies_the_caller(team):
    channel = channel_of(team["workspace"], "in_app")
    client_for(team["admin"]).post(f"{CHANNELS}/{channel.pk}/test")
    assert [n.title for n in Notification.objects.filter(user=team["admin"])] == ["Test notification"]
    assert not Notification.objects.exclude(user=team["admin"]).exists()


def test_deliveries_are_listed_by_status_channel_and_time_and_resent(team, httpserver):
    httpserver.expect_ordered_request("/hook").respond_with_data("bad", status=400)
    httpserver.expect_ordered_request("/hook").respond_with_data("ok")
    hook = channel_of(team["workspace"], "webhook", {"url": httpserver.url_for("/hook")})
    inbox = channel_of(team["workspace"], "in_app")
    failed = delivery_create(channel=hook, body="x")
    delivery_send(delivery_id=failed.pk)
    delivery_create(channel=inbox, body="y")
    admin = client_for(team["admin"])

    assert admin.get(DELIVERIES).json()["count"] == 2
    assert [d["id"] for d in admin.get(f"{DELIVERIES}?status=dead").json()["results"]] == [str(failed.pk)]
    assert admin.get(f"{DELIVERIES}?channel={inbox.pk}").json()["count"] == 1
    assert admin.get(f"{DELIVERIES}?since=2999-01-01T00:00:00Z").json()["count"] == 0
    assert "status" in problem(admin.get(f"{DELIVERIES}?status=lost"), 400)["errors"]
    assert "since" in problem(admin.get(f"{DELIVERIES}?since=yesterday"), 400)["errors"]

    resent = admin.post(f"{DELIVERIES}/{failed.pk}/resend")
    assert (resent.status_code, resent.json()["status"]) == (202, "queued")
    problem(admin.post(f"{DELIVERIES}/{failed.pk}/resend"), 409)
    assert delivery_send(delivery_id=failed.pk).status == "sent"
    assert AuditEvent.objects.filter(action="notification_delivery.resent", target_id=str(failed.pk)).count() == 1


def test_deliveries_are_for_admins_of_their_workspace(team):
    delivery = delivery_create(channel=channel_of(team["workspace"], "in_app"), body="x")
    Delivery.objects.filter(pk=delivery.pk).update(status="dead")
    assert client_for(team["editor"]).get(DELIVERIES).json()["count"] == 0
    problem(client_for(team["editor"]).post(f"{DELIVERIES}/{delivery.pk}/resend"), 403)
    problem(client_for(team["stranger"]).get(f"{DELIVERIES}/{delivery.pk}"), 404)
    problem(client_for(team["stranger"]).post(f"{DELIVERIES}/{delivery.pk}/resend"), 404)
    assert Delivery.objects.get(pk=delivery.pk).status == "dead"


def test_each_user_reads_and_marks_only_their_own_inbox(team):
    channel = channel_of(team["workspace"], "in_app", {"roles": ["admin", "viewer"]})
    for subject in ("one", "two"):
        delivery_send(delivery_id=delivery_create(channel=channel, subject=subject).pk)
    viewer, admin = client_for(team["viewer"]), client_for(team["admin"])

    mine = viewer.get(INBOX).json()
    assert [n["title"] for n in mine["results"]] == ["two", "one"]
    assert viewer.get(f"{INBOX}/unread-count").json() == {"count": 2}
    assert client_for(team["editor"]).get(INBOX).json()["count"] == 0

    first = mine["results"][0]["id"]
    read = viewer.post(f"{INBOX}/{first}/read")
    assert read.status_code == 200 and read.json()["read_at"] is not None
    assert viewer.get(f"{INBOX}/unread-count").json() == {"count": 1}
    assert [n["title"] for n in viewer.get(f"{INBOX}?unread=true").json()["results"]] == ["one"]
    # Someone else's notification does not exist for them, like an unknown id.
    assert problem(admin.post(f"{INBOX}/{first}/read"), 404) == problem(
        admin.post(f"{INBOX}/00000000-0000-0000-0000-000000000000/read"), 404
    )

    assert viewer.post(f"{INBOX}/read-all").json() == {"marked": 1}
    assert viewer.get(f"{INBOX}/unread-count").json() == {"count": 0}
    assert admin.get(f"{INBOX}/unread-count").json() == {"count": 2}


def test_the_inbox_needs_a_login(api):
    assert api.get(INBOX).status_code == 401
    assert api.get(f"{INBOX}/unread-count").status_code == 401
