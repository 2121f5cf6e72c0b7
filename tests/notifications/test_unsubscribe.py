"""One-click unsubscribe (RFC 8058) end to end: the email a real SMTP server (aiosmtpd) receives names
a signed link; a plain HTTP client POSTs to it as a mail client would, and the user's email is muted.
Addresses that are not users get the mailto form, in a message of their own."""

import email
import email.policy
import re

import httpx
import pytest

from audit.models import AuditEvent
from notifications.models import Delivery, Notification, Preference, Rule
from notifications.services.deliveries import delivery_create, delivery_send
from notifications.services.matching import events_match
from notifications.services.templates import sample_event
from notifications.unsubscribe import unsubscribe_token
from tests.notifications.conftest import channel_of
from tests.notifications.test_email import smtp  # noqa: F401 - the SMTP server fixture

pytestmark = pytest.mark.django_db(transaction=True)

LINK = re.compile(r"^<(?P<url>https?://[^>]+/notifications/unsubscribe/[^>]+)>$")


def received(inbox) -> list[tuple[list[str], email.message.EmailMessage]]:
    return [(to, email.message_from_bytes(raw, policy=email.policy.default)) for to, raw in inbox.messages]


def test_a_mail_clients_one_click_post_to_the_emails_link_mutes_email(team, smtp, live_server, settings):  # noqa: F811
    settings.DWC_PUBLIC_URL = live_server.url
    editor = team["editor"]
    delivery = delivery_create(channel=channel_of(team["workspace"], "email"), recipient=editor, body="Run failed.")
    assert delivery_send(delivery_id=delivery.pk).status == "sent"

    [(to, message)] = received(smtp)
    assert to == [editor.email]
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = LINK.match(message["List-Unsubscribe"].strip())["url"]

    # Following the link only asks; nothing changes until the button or the one-click POST.
    page = httpx.get(url)
    assert page.status_code == 200 and editor.email in page.text and "<form" in page.text
    assert not Preference.objects.filter(user=editor, muted_kinds__contains=["email"]).exists()

    answer = httpx.post(url, data={"List-Unsubscribe": "One-Click"})
    assert answer.status_code == 200, answer.text
    assert "You are unsubscribed" in answer.text
    assert Preference.objects.get(user=editor).muted_kinds == ["email"]
    [event] = AuditEvent.objects.filter(action="notification_preference.unsubscribed")
    assert event.actor_id == editor.pk and event.changes == {"muted_kinds": [[], ["email"]]}
    # Again (a client retrying): still 200, nothing more recorded.
    assert httpx.post(url, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert AuditEvent.objects.filter(action="notification_preference.unsubscribed").count() == 1


def test_a_tampered_or_foreign_token_is_a_400_page_and_changes_nothing(team, live_server):
    token = unsubscribe_token(user_id=team["editor"].pk)
    payload, _, signature = token.rpartition(":")
    tampered = f"{payload}:{signature[:-1]}{'A' if signature[-1] != 'A' else 'B'}"
    other_user = unsubscribe_token(user_id=team["viewer"].pk)
    forged = f"{other_user.rpartition(':')[0]}:{signature}"
    for bad in (tampered, forged, "not-a-token", "a" * 3000, unsubscribe_token(user_id="nobody")):
        url = f"{live_server.url}/notifications/unsubscribe/{bad}"
        for answer in (httpx.get(url), httpx.post(url, data={"List-Unsubscribe": "One-Click"})):
            assert answer.status_code == 400, (bad, answer.status_code)
            assert "not valid" in answer.text
    assert not Preference.objects.filter(muted_kinds__len__gt=0).exists()


def test_addresses_that_are_not_users_get_a_message_of_their_own_with_the_mailto_form(team, smtp, settings):  # noqa: F811
    settings.DWC_PUBLIC_URL = "https://dwc.example"
    settings.DWC_EMAIL_ALLOWED_DOMAINS = ["lists.example"]
    channel = channel_of(team["workspace"], "email", {"to": ["ops@lists.example"]})
    delivery = delivery_create(channel=channel, recipient=team["viewer"], body="x")
    assert delivery_send(delivery_id=delivery.pk).status == "sent"

    by_address = {tuple(to): message for to, message in received(smtp)}
    assert set(by_address) == {(team["viewer"].email,), ("ops@lists.example",)}
    mine, theirs = by_address[(team["viewer"].email,)], by_address[("ops@lists.example",)]
    assert "/notifications/unsubscribe/" in mine["List-Unsubscribe"]
    assert theirs["List-Unsubscribe"].strip().startswith("<mailto:unsubscribe@dwc.example?subject=unsubscribe%20")
    assert theirs["List-Unsubscribe-Post"] is None
    assert mine["Message-ID"] != theirs["Message-ID"]
    assert "/notifications/unsubscribe/" not in theirs.as_string()


def test_after_one_click_a_rules_next_event_sends_that_member_no_email(team, smtp, live_server, settings):  # noqa: F811
    settings.DWC_PUBLIC_URL = live_server.url
    workspace, editor = team["workspace"], team["editor"]
    rule = Rule.objects.create(
        workspace=workspace, name="failures", events=["run.failed"], roles=["editor"], member_kinds=["in_app", "email"]
    )

    events_match([{**sample_event("run.failed", workspace), "id": "first", "subject": "wf-1"}])
    first = Delivery.objects.get(rule=rule, direct_kind="email", recipient=editor)
    assert delivery_send(delivery_id=first.pk).status == "sent"
    [(_, message)] = received(smtp)
    url = LINK.match(message["List-Unsubscribe"].strip())["url"]
    assert httpx.post(url, data={"List-Unsubscribe": "One-Click"}).status_code == 200

    events_match([{**sample_event("run.failed", workspace), "id": "second", "subject": "wf-2"}])
    assert Delivery.objects.filter(rule=rule, direct_kind="email", recipient=editor).count() == 1
    # The inbox still records.
    assert Notification.objects.filter(user=editor).count() == 2
