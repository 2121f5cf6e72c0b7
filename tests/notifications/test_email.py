"""The email channel against a real SMTP server (aiosmtpd) on a local port."""

import email
import email.policy
import socket

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from notifications.services.deliveries import delivery_create, delivery_send
from tests.notifications.conftest import channel_of

pytestmark = pytest.mark.django_db


class Inbox:
    """aiosmtpd handler keeping what it receives; `refuse` answers RCPT with that reply instead."""

    def __init__(self):
        self.messages: list[tuple[list[str], bytes]] = []
        self.refuse = ""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 - aiosmtpd's name
        if self.refuse:
            return self.refuse
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.messages.append((list(envelope.rcpt_tos), envelope.original_content or envelope.content))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp(settings):
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", controller.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 5
    settings.DEFAULT_FROM_EMAIL = "dwc@dwc.example"
    settings.DWC_NOTIFICATIONS_UNSUBSCRIBE_MAILTO = "unsubscribe@dwc.example"
    yield inbox
    controller.stop()


def test_an_email_arrives_with_text_and_html_alternatives_and_list_unsubscribe(team, smtp, settings):
    settings.DWC_PUBLIC_URL = "https://dwc.example"
    channel = channel_of(team["workspace"], "email")
    delivery = delivery_create(
        channel=channel,
        recipient=team["editor"],
        subject="Run failed",
        body="Step <x> failed.",
        link="https://dwc.example/r/1",
    )

    sent = delivery_send(delivery_id=delivery.pk)

    assert sent.status == "sent"
    [(recipients, raw)] = smtp.messages
    assert recipients == [team["editor"].email]
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["Subject"] == "Run failed"
    assert message["List-Unsubscribe"].strip().startswith("<https://dwc.example/notifications/unsubscribe/")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Message-ID"] == sent.provider_id == f"<{delivery.idempotency_key}@dwc.example>"
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert text.replace("\r\n", "\n").strip() == "Step <x> failed.\n\nhttps://dwc.example/r/1"
    assert "<p>Step &lt;x&gt; failed.</p>" in html and 'href="https://dwc.example/r/1"' in html


def test_an_address_the_workspace_may_not_mail_is_refused_before_smtp(team, smtp):
    delivery = delivery_create(channel=channel_of(team["workspace"], "email", {"to": ["someone@elsewhere.example"]}))
    dead = delivery_send(delivery_id=delivery.pk)
    assert dead.status == "dead" and "someone@elsewhere.example" in dead.error
    assert smtp.messages == []


@pytest.mark.parametrize(("reply", "status"), [("550 No such user", "dead"), ("451 Try again later", "retrying")])
def test_a_5xx_smtp_reply_is_permanent_and_a_4xx_one_transient(team, smtp, reply, status):
    smtp.refuse = reply
    delivery = delivery_create(channel=channel_of(team["workspace"], "email"), recipient=team["viewer"], body="x")
    assert delivery_send(delivery_id=delivery.pk).status == status


def test_a_mail_server_that_is_down_is_transient(team, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 2
    delivery = delivery_create(channel=channel_of(team["workspace"], "email"), recipient=team["viewer"], body="x")
    assert delivery_send(delivery_id=delivery.pk).status == "retrying"
