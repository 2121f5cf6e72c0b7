"""Each HTTP channel kind against a local server standing in for its service: the body it posts, the
Standard Webhooks signature (checked here by hand and by the reference verifier), errors it classifies."""

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook
from werkzeug import Response

from notifications.channels.base import DeliveryError, retry_after_seconds
from notifications.channels.registry import CHANNEL_KINDS, channel_kind_get
from notifications.models import Delivery
from notifications.services.deliveries import delivery_create, delivery_message, delivery_send
from tests.notifications.conftest import channel_of
from workflows.services.credentials import credential_save

pytestmark = pytest.mark.django_db

SECRET = "whsec_" + base64.b64encode(b"a secret of thirty-two bytes!!!!").decode()


def sent(channel, **fields) -> Delivery:
    delivery = delivery_create(channel=channel, **fields)
    return delivery_send(delivery_id=delivery.pk)


def posted(httpserver) -> dict:
    request, _response = httpserver.log[-1]
    return json.loads(request.get_data())


def test_a_signed_webhook_verifies_the_standard_webhooks_way(team, httpserver):
    workspace = team["workspace"]
    credential_save(workspace_id=workspace.pk, name="hooks", kind="hmac_secret", value={"secret": SECRET})
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    channel = channel_of(workspace, "webhook", {"url": httpserver.url_for("/hook")}, credential="hooks")

    delivery = sent(channel, subject="Run failed", body="Step x failed", payload={"type": "run.failed", "run": "r1"})

    assert (delivery.status, delivery.response_code, delivery.attempts) == ("sent", 200, 1)
    request = httpserver.log[-1][0]
    body = request.get_data()
    headers = {name.lower(): value for name, value in request.headers.items()}
    assert headers["webhook-id"] == delivery.idempotency_key
    # By hand: v1,base64(HMAC-SHA256(key, "id.timestamp.body")) with the base64 key after whsec_.
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    assert (
        headers["webhook-signature"]
        == "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    )
    # And by the standard's reference verifier.
    event = Webhook(SECRET).verify(body, headers)
    assert event["type"] == "run.failed"
    assert event["data"] == {"subject": "Run failed", "body": "Step x failed", "link": "", "level": "info", "run": "r1"}


def test_slack_gets_block_kit_with_a_text_fallback(team, httpserver):
    httpserver.expect_request("/slack", method="POST").respond_with_data("ok")
    credential_save(
        workspace_id=team["workspace"].pk,
        name="slack",
        kind="slack_webhook",
        value={"url": httpserver.url_for("/slack")},
    )
    channel = channel_of(team["workspace"], "slack", credential="slack")

    delivery = sent(channel, subject="Run failed", body="a <b> & c", link="https://dwc.example/runs/1")

    assert delivery.status == "sent"
    assert posted(httpserver) == {
        "text": "Run failed",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "Run failed"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "a &lt;b&gt; &amp; c"}},
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open"},
                        "url": "https://dwc.example/runs/1",
                    }
                ],
            },
        ],
    }


def test_teams_gets_an_adaptive_card(team, httpserver):
    httpserver.expect_request("/teams", method="POST").respond_with_data("", status=202)
    channel = channel_of(team["workspace"], "teams", {"url": httpserver.url_for("/teams")})

    delivery = sent(
        channel, subject="Approval waits", body="Approve the draft", level="warning", link="https://x.example/"
    )

    assert (delivery.status, delivery.response_code) == ("sent", 202)
    body = posted(httpserver)
    assert body["type"] == "message"
    [attachment] = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    assert [block["text"] for block in card["body"]] == ["Approval waits", "Approve the draft"]
    assert card["body"][0]["color"] == "Warning"
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Open", "url": "https://x.example/"}]


def test_discord_gets_an_embed_and_its_message_id_is_kept(team, httpserver):
    httpserver.expect_request("/discord", method="POST", query_string="wait=true").respond_with_json({"id": "1234"})
    channel = channel_of(team["workspace"], "discord", {"url": httpserver.url_for("/discord")})

    delivery = sent(channel, subject="Done", body="All steps succeeded", level="success")

    assert (delivery.status, delivery.provider_id) == ("sent", "1234")
    assert posted(httpserver) == {
        "embeds": [{"color": 0x57F287, "title": "Done", "description": "All steps succeeded"}],
        "allowed_mentions": {"parse": []},
    }


def test_in_app_fills_the_inboxes_of_the_channels_roles_once(team):
    channel = channel_of(team["workspace"], "in_app", {"roles": ["admin", "editor"]})

    delivery = sent(channel, subject="Run failed", body="See the run", link="/runs/1", level="error")

    assert delivery.status == "sent"
    notified = {
        (n.user, n.title, n.level) for n in team["admin"].notifications.all() | team["editor"].notifications.all()
    }
    assert notified == {(team["admin"], "Run failed", "error"), (team["editor"], "Run failed", "error")}
    assert not team["viewer"].notifications.exists()
    # Sent again under the same delivery (a recovery re-send), nobody gets it twice.
    CHANNEL_KINDS["in_app"].send(channel.config, None, delivery_message(delivery))
    assert team["admin"].notifications.count() == 1


@pytest.mark.parametrize(
    ("kind", "config", "errors"),
    [
        ("webhook", {}, {"config": ["'url' is a required property"]}),
        ("webhook", {"url": "ftp://x"}, {"config.url"}),
        ("webhook", {"url": "https://x.example", "headers": {"webhook-id": "1"}}, {"config.headers"}),
        ("slack", {}, {"config.url"}),
        ("teams", {"url": "https://x.example", "extra": 1}, {"config"}),
        ("in_app", {"roles": ["boss"]}, {"config.roles.0"}),
        ("email", {"to": "a@b.c"}, {"config.to"}),
        ("email", "nope", {"config"}),
    ],
)
def test_configs_are_checked_against_their_kinds_schema(kind, config, errors):
    found = channel_kind_get(kind).validate(config, credential="")
    assert set(found) == set(errors) if isinstance(errors, set) else found == errors


def test_retry_after_reads_seconds_and_http_dates():
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert retry_after_seconds("120") == 120
    assert retry_after_seconds((now + timedelta(seconds=30)).strftime("%a, %d %b %Y %H:%M:%S GMT"), now=now) == 30
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


@pytest.mark.parametrize(
    ("status", "permanent"),
    [(400, True), (401, True), (404, True), (410, True), (408, False), (429, False), (500, False), (503, False)],
)
def test_most_4xx_are_permanent_and_429_and_5xx_transient(team, httpserver, status, permanent):
    httpserver.expect_request("/hook").respond_with_response(
        Response("no", status=status, headers={"Retry-After": "7"})
    )
    delivery = delivery_create(channel=channel_of(team["workspace"], "webhook", {"url": "https://x.example"}))
    with pytest.raises(DeliveryError) as caught:
        channel_kind_get("webhook").send({"url": httpserver.url_for("/hook")}, None, delivery_message(delivery))
    assert (caught.value.permanent, caught.value.response_code, caught.value.retry_after) == (permanent, status, 7)
