"""The web_push kind against a local server standing in for a push service. The test plays the browser:
it makes the subscription's key pair and auth secret, decrypts what the push service received, and
verifies the VAPID token against the server's public key."""

import io
import json
import time

import pytest
from django.conf import settings
from django.core.management import call_command
from py_vapid import Vapid
from werkzeug import Response

from notifications.channels.base import DeliveryError, Message
from notifications.channels.registry import channel_kind_get
from notifications.channels.web_push import (
    MAX_PAYLOAD_BYTES,
    NOT_CONFIGURED,
    push_payload,
    vapid_keys,
    vapid_keys_generate,
)
from notifications.models import Delivery, PushSubscription
from notifications.services.deliveries import delivery_create, delivery_send
from tests.notifications.browser import Browser, unb64url
from tests.notifications.conftest import channel_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def vapid(settings):
    private, public = vapid_keys_generate()
    settings.DWC_WEBPUSH_VAPID_PRIVATE_KEY = private
    settings.DWC_WEBPUSH_VAPID_PUBLIC_KEY = public
    settings.DWC_WEBPUSH_SUBJECT = "mailto:ops@dwc.example"
    return public


def due_now(delivery: Delivery) -> None:
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=delivery.created_at)


def jwt_claims(authorization: str) -> dict:
    token = authorization.split("t=", 1)[1].split(",", 1)[0]
    return json.loads(unb64url(token.split(".")[1]))


def test_the_push_service_gets_an_encrypted_payload_the_browser_decrypts_and_a_vapid_token_that_verifies(
    team, httpserver, vapid
):
    httpserver.expect_request("/push/abc", method="POST").respond_with_response(
        Response("", status=201, headers={"Location": "https://push.example/m/1"})
    )
    browser = Browser()
    subscription = browser.subscribe(team["editor"], httpserver.url_for("/push/abc"))
    channel = channel_of(team["workspace"], "web_push")
    delivery = delivery_create(
        channel=channel,
        recipient=team["editor"],
        subject="Run failed",
        body="Step x failed",
        link="/runs/1",
        level="error",
    )

    sent = delivery_send(delivery_id=delivery.pk)

    assert (sent.status, sent.response_code, sent.provider_id) == ("sent", 201, "https://push.example/m/1")
    request = httpserver.log[-1][0]
    assert browser.decrypt(request.get_data()) == {
        "title": "Run failed",
        "body": "Step x failed",
        "link": f"{settings.DWC_PUBLIC_URL}/runs/1",  # our path, as an address the browser opens
        "level": "error",
        "id": str(delivery.pk),
    }
    headers = request.headers
    assert (headers["Content-Encoding"], headers["TTL"], headers["Urgency"]) == ("aes128gcm", "86400", "high")
    authorization = headers["Authorization"]
    assert authorization.startswith("vapid t=")
    assert Vapid.verify(authorization)
    assert authorization.rsplit("k=", 1)[1] == vapid  # signed by the key browsers subscribed with
    claims = jwt_claims(authorization)
    assert claims["aud"] == httpserver.url_for("/").rstrip("/")
    assert claims["sub"] == "mailto:ops@dwc.example"
    assert time.time() < claims["exp"] <= time.time() + 24 * 3600
    subscription.refresh_from_db()
    assert subscription.last_used_at is not None


def test_without_a_recipient_the_browsers_of_the_channels_roles_are_notified(team, httpserver, vapid):
    httpserver.expect_request("/push/admin").respond_with_data("", status=201)
    httpserver.expect_request("/push/editor").respond_with_data("", status=201)
    browsers = {role: Browser() for role in ("admin", "editor", "viewer")}
    for role, browser in browsers.items():
        browser.subscribe(team[role], httpserver.url_for(f"/push/{role}"))
    channel = channel_of(team["workspace"], "web_push", {"roles": ["admin", "editor"]})

    sent = delivery_send(delivery_id=delivery_create(channel=channel, subject="Hi", body="there").pk)

    assert sent.status == "sent"
    assert sorted(request.path for request, _ in httpserver.log) == ["/push/admin", "/push/editor"]
    for request, _ in httpserver.log:
        role = request.path.rsplit("/", 1)[1]
        assert browsers[role].decrypt(request.get_data())["title"] == "Hi"


def test_a_500_then_a_429_with_retry_after_then_a_201_is_sent_on_the_third_attempt(team, httpserver, vapid):
    httpserver.expect_ordered_request("/push/1").respond_with_data("down", status=500)
    httpserver.expect_ordered_request("/push/1").respond_with_response(
        Response("slow down", status=429, headers={"Retry-After": "60"})
    )
    httpserver.expect_ordered_request("/push/1").respond_with_data("", status=201)
    browser = Browser()
    browser.subscribe(team["admin"], httpserver.url_for("/push/1"))
    delivery = delivery_create(channel=channel_of(team["workspace"], "web_push"), recipient=team["admin"], body="b")

    assert delivery_send(delivery_id=delivery.pk).status == "retrying"
    due_now(delivery)
    second = delivery_send(delivery_id=delivery.pk)
    assert (second.status, second.response_code) == ("retrying", 429)
    assert 58 < (second.next_attempt_at - second.claimed_at).total_seconds() <= 61
    due_now(delivery)
    third = delivery_send(delivery_id=delivery.pk)

    assert (third.status, third.attempts) == ("sent", 3)
    # Every attempt is encrypted anew, and each decrypts to the same message.
    assert {browser.decrypt(request.get_data())["id"] for request, _ in httpserver.log} == {str(delivery.pk)}


def test_a_400_goes_dead_without_retrying(team, httpserver, vapid):
    httpserver.expect_request("/push/1").respond_with_data("bad VAPID", status=400)
    Browser().subscribe(team["admin"], httpserver.url_for("/push/1"))
    delivery = delivery_create(channel=channel_of(team["workspace"], "web_push"), recipient=team["admin"], body="b")

    dead = delivery_send(delivery_id=delivery.pk)

    assert (dead.status, dead.attempts, dead.response_code) == ("dead", 1, 400)
    assert "bad VAPID" in dead.error
    assert PushSubscription.objects.count() == 1


def test_a_410_deletes_that_subscription_and_the_others_still_get_the_message(team, httpserver, vapid):
    httpserver.expect_request("/push/old").respond_with_data("gone", status=410)
    httpserver.expect_request("/push/new").respond_with_data("", status=201)
    old = Browser().subscribe(team["admin"], httpserver.url_for("/push/old"))
    new = Browser().subscribe(team["admin"], httpserver.url_for("/push/new"))
    delivery = delivery_create(channel=channel_of(team["workspace"], "web_push"), recipient=team["admin"], body="b")

    assert delivery_send(delivery_id=delivery.pk).status == "sent"
    assert list(PushSubscription.objects.values_list("pk", flat=True)) == [new.pk]
    assert not PushSubscription.objects.filter(pk=old.pk).exists()


def test_when_every_subscription_is_gone_the_delivery_is_dead(team, httpserver, vapid):
    httpserver.expect_request("/push/1").respond_with_data("", status=404)
    Browser().subscribe(team["admin"], httpserver.url_for("/push/1"))
    delivery = delivery_create(channel=channel_of(team["workspace"], "web_push"), recipient=team["admin"], body="b")

    dead = delivery_send(delivery_id=delivery.pk)

    assert (dead.status, dead.attempts) == ("dead", 1)
    assert "subscribed" in dead.error
    assert not PushSubscription.objects.exists()


def test_a_push_endpoint_on_a_refused_address_is_not_sent_to(team, httpserver, vapid, settings):
    settings.DWC_OUTBOUND_ALLOWLIST = []
    Browser().subscribe(team["admin"], httpserver.url_for("/push/1"))
    delivery = delivery_create(channel=channel_of(team["workspace"], "web_push"), recipient=team["admin"], body="b")

    dead = delivery_send(delivery_id=delivery.pk)

    assert (dead.status, dead.attempts) == ("dead", 1)
    assert "not a public address" in dead.error
    assert httpserver.log == []


def test_without_vapid_keys_the_kind_refuses_with_a_permanent_error(team, settings):
    settings.DWC_WEBPUSH_VAPID_PRIVATE_KEY = ""
    message = Message(
        delivery_id="d", workspace_id=str(team["workspace"].pk), idempotency_key="k", subject="", body="b"
    )

    with pytest.raises(DeliveryError) as caught:
        channel_kind_get("web_push").send({}, None, message)

    assert (caught.value.permanent, caught.value.message) == (True, NOT_CONFIGURED)


def test_a_public_key_that_is_not_the_private_keys_half_is_refused(team, settings, vapid):
    settings.DWC_WEBPUSH_VAPID_PUBLIC_KEY = vapid_keys_generate()[1]
    message = Message(
        delivery_id="d", workspace_id=str(team["workspace"].pk), idempotency_key="k", subject="", body="b"
    )

    with pytest.raises(DeliveryError) as caught:
        channel_kind_get("web_push").send({}, None, message)

    assert caught.value.permanent
    assert "public half" in caught.value.message


def test_a_long_body_is_cut_to_fit_one_push_message():
    message = Message(delivery_id="d", workspace_id="w", idempotency_key="k", subject="S", body="é" * 10_000)

    payload = push_payload(message)

    assert len(payload) <= MAX_PAYLOAD_BYTES
    assert json.loads(payload)["body"].endswith("…")


def test_webpush_keys_prints_a_pair_the_settings_take(settings):
    out = io.StringIO()
    call_command("webpush_keys", stdout=out)
    lines = dict(line.split("=", 1) for line in out.getvalue().split())
    settings.DWC_WEBPUSH_VAPID_PRIVATE_KEY = lines["DWC_WEBPUSH_VAPID_PRIVATE_KEY"]
    settings.DWC_WEBPUSH_VAPID_PUBLIC_KEY = lines["DWC_WEBPUSH_VAPID_PUBLIC_KEY"]

    keys = vapid_keys()

    assert keys is not None
    assert keys.public_key == lines["DWC_WEBPUSH_VAPID_PUBLIC_KEY"]
    assert len(unb64url(keys.public_key)) == 65
