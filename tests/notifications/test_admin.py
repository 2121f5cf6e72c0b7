"""The admin: channels saved through the channel services (checked and audited), deliveries and
notifications as history, and the resend action."""

import pytest

from accounts.models import User
from audit.models import AuditEvent
from notifications.models import Channel, Delivery, Rule, Template
from notifications.services.deliveries import delivery_create
from tests.notifications.conftest import channel_of

pytestmark = pytest.mark.django_db

CHANNELS = "/admin/notifications/channel/"
DELIVERIES = "/admin/notifications/delivery/"


@pytest.fixture
def operator(client):
    client.force_login(User.objects.create_superuser(email="root@example.com", password="x-Long-enough-1"))
    return client


def test_a_channel_added_in_the_admin_is_checked_and_audited(operator, team):
    form = {
        "workspace": str(team["workspace"].pk),
        "name": "Ops",
        "kind": "webhook",
        "config": '{"url": "gopher://x"}',
        "credential": "",
        "enabled": "on",
    }
    refused = operator.post(f"{CHANNELS}add/", form)
    assert refused.status_code == 200
    assert "config.url" in str(refused.context["adminform"].form.errors)
    assert not Channel.objects.exists()

    form["config"] = '{"url": "https://hooks.example/ops"}'
    assert operator.post(f"{CHANNELS}add/", form).status_code == 302
    channel = Channel.objects.get()
    assert (channel.name, channel.config) == ("Ops", {"url": "https://hooks.example/ops"})
    assert AuditEvent.objects.filter(action="notification_channel.created", target_id=str(channel.pk)).exists()

    changed = {**form, "name": "Ops alerts"}
    del changed["workspace"], changed["kind"]
    assert operator.post(f"{CHANNELS}{channel.pk}/change/", changed).status_code == 302
    channel.refresh_from_db()
    assert channel.name == "Ops alerts"
    assert AuditEvent.objects.get(action="notification_channel.updated").changes == {"name": ["Ops", "Ops alerts"]}

    assert operator.post(f"{CHANNELS}{channel.pk}/delete/", {"post": "yes"}).status_code == 302
    assert AuditEvent.objects.filter(action="notification_channel.deleted").exists()


def test_deliveries_are_history_with_a_resend_action(operator, team):
    channel = channel_of(team["workspace"], "in_app")
    dead = delivery_create(channel=channel, body="x")
    sent = delivery_create(channel=channel, body="y")
    Delivery.objects.filter(pk=dead.pk).update(status="dead")
    Delivery.objects.filter(pk=sent.pk).update(status="sent")

    page = operator.get(f"{DELIVERIES}?status__exact=dead")
    assert page.status_code == 200 and list(page.context["cl"].result_list) == [dead]
    assert operator.get(f"{DELIVERIES}{dead.pk}/change/").status_code == 200
    assert operator.get(f"{DELIVERIES}add/").status_code == 403

    answer = operator.post(DELIVERIES, {"action": "resend", "_selected_action": [str(dead.pk), str(sent.pk)]})
    assert answer.status_code == 302
    assert Delivery.objects.get(pk=dead.pk).status == "queued"
    assert Delivery.objects.get(pk=sent.pk).status == "sent"
    assert AuditEvent.objects.filter(action="notification_delivery.resent", target_id=str(dead.pk)).exists()


def test_notifications_are_read_only(operator):
    assert operator.get("/admin/notifications/notification/").status_code == 200
    assert operator.get("/admin/notifications/notification/add/").status_code == 403


def test_a_template_added_in_the_admin_is_parsed_and_audited(operator, team):
    form = {
        "workspace": str(team["workspace"].pk),
        "name": "T",
        "subject": "",
        "body": "Hi\n{{ run.id ",
        "formats": "{}",
    }
    refused = operator.post("/admin/notifications/template/add/", form)
    assert refused.status_code == 200
    assert "line 2" in str(refused.context["adminform"].form.errors["body"])
    assert not Template.objects.exists()

    form["body"] = "Hi {{ run.id }}"
    assert operator.post("/admin/notifications/template/add/", form).status_code == 302
    assert AuditEvent.objects.filter(action="notification_template.created").count() == 1


def test_a_rule_added_in_the_admin_is_checked_by_the_rule_service_and_audited(operator, team):
    channel = channel_of(team["workspace"], "in_app")
    form = {
        "workspace": str(team["workspace"].pk),
        "name": "Failures",
        "enabled": "on",
        "events": "run.failed,run.exploded",
        "tags": "",
        "roles": "",
        "member_kinds": "in_app",
        "throttle_count": "20",
        "throttle_window_seconds": "3600",
        "digest_window_seconds": "0",
    }
    refused = operator.post("/admin/notifications/rule/add/", form)
    assert refused.status_code == 200
    errors = refused.context["adminform"].form.errors
    assert "events" in errors
    assert not Rule.objects.exists()

    form.update(events="run.failed", channels=[str(channel.pk)])
    answer = operator.post("/admin/notifications/rule/add/", form)
    assert answer.status_code == 302, answer.context["adminform"].form.errors
    rule = Rule.objects.get()
    assert (rule.events, list(rule.channels.all())) == (["run.failed"], [channel])
    assert AuditEvent.objects.filter(action="notification_rule.created").count() == 1
