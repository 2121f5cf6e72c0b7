"""The rules at work: matching by event type, workflow and tag; fan-out to channels and members;
preferences (muted, quiet hours); throttles; digests; an event handed on twice notifies once."""

from datetime import UTC, datetime, time, timedelta

import pytest
from django.utils import timezone

from notifications.models import Delivery, Match, Notification, Preference, Rule, Template
from notifications.services.deliveries import delivery_send
from notifications.services.matching import TEMPLATE_FAILED, digests_send, events_match
from notifications.services.templates import sample_event
from tests.factories import UserFactory
from tests.notifications.conftest import channel_of

pytestmark = pytest.mark.django_db


def rule_of(workspace, **fields) -> Rule:
    channels = fields.pop("channels", [])
    members = fields.pop("members", [])
    rule = Rule.objects.create(
        workspace=workspace, name=fields.pop("name", "failures"), events=fields.pop("events", ["run.failed"]), **fields
    )
    rule.channels.set(channels)
    rule.members.set(members)
    return rule


def event_of(workspace, event_type="run.failed", *, id="e1", subject="wf-1", **changes) -> dict:
    event = {**sample_event(event_type, workspace), "id": id, "subject": subject, **changes}
    return event


def test_a_failed_run_notifies_the_role_holders_inboxes_with_the_default_message(team):
    rule = rule_of(team["workspace"], roles=["admin", "editor"], member_kinds=["in_app"])

    events_match([event_of(team["workspace"])])

    inbox = Notification.objects.order_by("user__email")
    assert sorted(n.user_id for n in inbox) == sorted([team["admin"].pk, team["editor"].pk])
    assert {n.title for n in inbox} == {"Run of Quarterly report failed"}
    assert "The model provider answered 503." in inbox[0].body
    assert inbox[0].level == "error"
    delivery = Delivery.objects.get(rule=rule)
    assert (delivery.direct_kind, delivery.status, delivery.channel_id) == ("in_app", "sent", None)
    assert Match.objects.get(rule=rule).outcome == "notified"


def test_a_rule_posts_to_its_channels_with_its_template(team, httpserver):
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    template = Template.objects.create(
        workspace=team["workspace"],
        name="short",
        subject="{{ workflow.name }}: {{ run.status }}",
        body="Step {{ step.key }} said {{ error.message }}",
    )
    channel = channel_of(team["workspace"], "webhook", {"url": httpserver.url_for("/hook")})
    rule_of(team["workspace"], channels=[channel], template=template)

    events_match([event_of(team["workspace"])])

    delivery = Delivery.objects.get(channel=channel)
    assert (delivery.subject, delivery.status) == ("Quarterly report: failed", "queued")
    assert delivery.body == "Step summary said The model provider answered 503."
    assert delivery_send(delivery_id=delivery.pk).status == "sent"  # as the queued task does
    body = httpserver.log[0][0].get_json()
    assert body["data"]["subject"] == "Quarterly report: failed"


def test_rules_filter_by_event_type_workflow_and_tag(team):
    workspace = team["workspace"]
    rule_of(workspace, name="other type", events=["run.succeeded"], roles=["admin"], member_kinds=["in_app"])
    rule_of(
        workspace,
        name="other workflow",
        workflow_id="00000000-0000-4000-8000-0000000000ff",
        roles=["admin"],
        member_kinds=["in_app"],
    )
    rule_of(workspace, name="other tag", tags=["billing"], roles=["admin"], member_kinds=["in_app"])
    taking = rule_of(workspace, name="reports", tags=["reports", "x"], roles=["admin"], member_kinds=["in_app"])

    events_match([event_of(workspace)])

    assert list(Match.objects.values_list("rule_id", flat=True)) == [taking.pk]


def test_a_timed_out_run_is_taken_by_rules_on_run_failed_and_on_run_timed_out(team):
    workspace = team["workspace"]
    failed = rule_of(workspace, name="failed", roles=["admin"], member_kinds=["in_app"])
    timed_out = rule_of(workspace, name="timed out", events=["run.timed_out"], roles=["admin"], member_kinds=["in_app"])

    events_match([event_of(workspace, "run.timed_out")])

    assert set(Match.objects.values_list("rule_id", flat=True)) == {failed.pk, timed_out.pk}


def test_an_event_handed_on_twice_notifies_once(team):
    rule_of(team["workspace"], roles=["admin"], member_kinds=["in_app"])
    event = event_of(team["workspace"])

    events_match([event])
    events_match([event])

    assert Notification.objects.count() == 1
    assert Match.objects.count() == 1


def test_the_throttle_caps_messages_per_subject_and_window(team):
    rule = rule_of(team["workspace"], roles=["admin"], member_kinds=["in_app"], throttle_count=3)

    events_match([event_of(team["workspace"], id=f"a{i}") for i in range(10)])
    events_match([event_of(team["workspace"], id="b1", subject="wf-2")])  # another subject has its own count

    outcomes = list(Match.objects.filter(rule=rule, subject="wf-1").values_list("outcome", flat=True))
    assert sorted(outcomes) == ["notified"] * 3 + ["throttled"] * 7
    assert Notification.objects.count() == 4

    # Once the window has passed, messages go out again.
    Match.objects.update(created_at=timezone.now() - timedelta(hours=2))
    events_match([event_of(team["workspace"], id="a-later")])
    assert Notification.objects.count() == 5


def test_a_digest_holds_events_until_its_window_closes_then_sends_one_message(team):
    rule = rule_of(team["workspace"], roles=["admin"], member_kinds=["in_app"], digest_window_seconds=3600)

    events_match([event_of(team["workspace"], id=f"d{i}", run={"id": f"r{i}"}) for i in range(3)])

    assert Notification.objects.count() == 0
    pending = Match.objects.filter(rule=rule, outcome="digest_pending")
    assert pending.count() == 3
    assert len(set(pending.values_list("digest_due_at", flat=True))) == 1  # one window for all three
    assert digests_send() == 0  # the window is still open

    # Later (another beat process: the matches are rows), the window has closed.
    assert digests_send(now=timezone.now() + timedelta(hours=1, seconds=1)) == 1
    notification = Notification.objects.get()
    assert notification.title == "3 notifications from failures"
    assert notification.body.count("- Run of Quarterly report failed") == 3
    assert Match.objects.filter(rule=rule, outcome="digested").count() == 3
    assert digests_send(now=timezone.now() + timedelta(hours=2)) == 0  # sent once


def test_a_muted_event_type_or_kind_is_skipped_for_that_person(team):
    Preference.objects.create(user=team["admin"], muted_events=["run.failed"])
    Preference.objects.create(user=team["editor"], muted_kinds=["email"])
    rule_of(team["workspace"], roles=["admin", "editor"], member_kinds=["in_app", "email"])

    events_match([event_of(team["workspace"])])

    assert list(Notification.objects.values_list("user_id", flat=True)) == [team["editor"].pk]
    assert not Delivery.objects.filter(direct_kind="email").exists()


def test_in_quiet_hours_an_email_waits_until_they_end_and_the_inbox_still_records(team, mailoutbox):
    now = timezone.now().astimezone(UTC)
    start = (now - timedelta(hours=1)).time().replace(second=0, microsecond=0)
    end = (now + timedelta(hours=2)).time().replace(second=0, microsecond=0)
    Preference.objects.create(user=team["admin"], quiet_hours_start=start, quiet_hours_end=end, timezone="UTC")
    rule_of(team["workspace"], roles=["admin", "editor"], member_kinds=["in_app", "email"])

    events_match([event_of(team["workspace"])])

    assert Notification.objects.count() == 2
    quiet = Delivery.objects.get(direct_kind="email", recipient=team["admin"])
    assert quiet.status == "scheduled"
    expected_end = datetime.combine(now.date(), end, tzinfo=UTC)
    if expected_end <= now:
        expected_end += timedelta(days=1)
    assert quiet.send_at == expected_end
    awake = Delivery.objects.get(direct_kind="email", recipient=team["editor"])
    assert (awake.status, awake.send_at) == ("queued", None)
    delivery_send(delivery_id=awake.pk)
    assert [message.to for message in mailoutbox] == [[team["editor"].email]]


def test_quiet_hours_across_midnight_in_the_persons_timezone():
    preference = Preference(quiet_hours_start=time(22, 0), quiet_hours_end=time(7, 0), timezone="Europe/Paris")
    # 23:30 in Paris (22:30 UTC in winter) is quiet until 07:00 Paris the next morning.
    assert preference.quiet_until(datetime(2026, 12, 7, 22, 30, tzinfo=UTC)) == datetime(2026, 12, 8, 6, 0, tzinfo=UTC)
    # 03:00 Paris is quiet until 07:00 the same morning; noon is not quiet.
    assert preference.quiet_until(datetime(2026, 12, 8, 2, 0, tzinfo=UTC)) == datetime(2026, 12, 8, 6, 0, tzinfo=UTC)
    assert preference.quiet_until(datetime(2026, 12, 8, 11, 0, tzinfo=UTC)) is None


def test_named_members_who_left_the_workspace_are_not_notified(team):
    leaver = UserFactory()
    rule = rule_of(team["workspace"], members=[team["viewer"], leaver], member_kinds=["in_app"])

    events_match([event_of(team["workspace"])])

    assert list(Notification.objects.values_list("user_id", flat=True)) == [team["viewer"].pk]
    assert rule.members.count() == 2


def test_a_template_that_fails_while_rendering_falls_back_to_the_default_message(team):
    template = Template.objects.create(workspace=team["workspace"], name="bad", body="{{ run.nothing.here }}")
    rule_of(team["workspace"], roles=["admin"], member_kinds=["in_app"], template=template)

    events_match([event_of(team["workspace"])])

    notification = Notification.objects.get()
    assert notification.title == "Run of Quarterly report failed"
    assert TEMPLATE_FAILED.split("{")[0] in notification.body


def test_a_template_naming_the_recipient_is_rendered_for_each_person(team):
    template = Template.objects.create(workspace=team["workspace"], name="hi", body="Hello {{ recipient.email }}")
    rule_of(team["workspace"], roles=["admin", "editor"], member_kinds=["in_app"], template=template)

    events_match([event_of(team["workspace"])])

    bodies = {n.user_id: n.body for n in Notification.objects.all()}
    assert bodies == {
        team["admin"].pk: f"Hello {team['admin'].email}",
        team["editor"].pk: f"Hello {team['editor'].email}",
    }


def test_an_event_lacking_what_the_default_message_names_is_still_notified(team):
    rule_of(team["workspace"], events=["credential.expiring"], roles=["admin"], member_kinds=["in_app"])
    event = event_of(team["workspace"], "credential.expiring", workflow=None, data={})

    events_match([event])

    notification = Notification.objects.get()
    assert notification.title == "Credential expires soon"
    rule_of(team["workspace"], name="odd", events=["schedule.missed"], roles=["admin"], member_kinds=["in_app"])
    events_match([event_of(team["workspace"], "schedule.missed", id="e2", workflow=None)])
    assert Notification.objects.filter(title="schedule.missed").exists()


def test_an_in_app_channel_skips_the_members_who_muted_the_event_or_the_inbox(team):
    Preference.objects.create(user=team["admin"], muted_events=["run.failed"])
    Preference.objects.create(user=team["editor"], muted_kinds=["in_app"])
    channel = channel_of(team["workspace"], "in_app")
    rule_of(team["workspace"], channels=[channel], member_kinds=[])

    events_match([event_of(team["workspace"])])
    delivery_send(delivery_id=Delivery.objects.get(channel=channel).pk)

    assert list(Notification.objects.values_list("user_id", flat=True)) == [team["viewer"].pk]


def test_links_to_our_pages_reach_outside_channels_as_addresses_on_the_public_url(team, httpserver, settings):
    settings.DWC_PUBLIC_URL = "https://dwc.example"
    httpserver.expect_request("/slack", method="POST").respond_with_data("ok")
    slack = channel_of(team["workspace"], "slack", {"url": httpserver.url_for("/slack")})
    rule_of(team["workspace"], channels=[slack], roles=["admin"], member_kinds=["in_app"])

    events_match([event_of(team["workspace"])])
    delivery_send(delivery_id=Delivery.objects.get(channel=slack).pk)

    [(request, _)] = httpserver.log
    button = request.get_json()["blocks"][-1]["elements"][0]
    assert button["url"] == "https://dwc.example/dashboard/runs/00000000-0000-4000-8000-000000000001/"
    assert Notification.objects.get().link == "/dashboard/runs/00000000-0000-4000-8000-000000000001/"
