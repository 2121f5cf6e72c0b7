"""A template's per-format bodies reach the channels that speak them: Slack blocks, a Teams card, a
Discord embed, HTML for email; channels without their format get the plain subject and body."""

import pytest

from notifications.models import Delivery, Rule, Template
from notifications.services.deliveries import delivery_send
from notifications.services.matching import events_match
from notifications.services.templates import sample_event
from tests.notifications.conftest import channel_of

pytestmark = pytest.mark.django_db

FORMATS = {
    "slack_blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*{{ workflow.name }}* broke"}}],
    "teams_card": [{"type": "TextBlock", "text": "{{ workflow.name }} broke"}],
    "discord_embed": {"title": "{{ workflow.name }}", "color": 1},
    "html": "<h1>{{ workflow.name }}</h1><p>{{ error.message }}</p>",
}


def test_the_markdown_format_is_the_text_of_the_chat_channels_without_their_own_format(team, httpserver):
    httpserver.expect_request("/discord", method="POST").respond_with_data("{}")
    workspace = team["workspace"]
    template = Template.objects.create(
        workspace=workspace, name="md", body="plain", formats={"markdown": "**{{ workflow.name }}** failed"}
    )
    rule = Rule.objects.create(workspace=workspace, name="r", events=["run.failed"], template=template)
    rule.channels.set([channel_of(workspace, "discord", {"url": httpserver.url_for("/discord")})])

    events_match([{**sample_event("run.failed", workspace), "id": "e1"}])
    delivery_send(delivery_id=Delivery.objects.get().pk)

    [(request, _)] = httpserver.log
    assert request.get_json()["embeds"][0]["description"] == "**Quarterly report** failed"


def test_each_channel_sends_its_own_format_of_the_rules_template(team, httpserver, mailoutbox):
    for path in ("/slack", "/teams", "/discord", "/hook"):
        httpserver.expect_request(path, method="POST").respond_with_data("ok")
    workspace = team["workspace"]
    template = Template.objects.create(
        workspace=workspace,
        name="rich",
        subject="{{ workflow.name }} failed",
        body="{{ error.message }}",
        formats=FORMATS,
    )
    channels = [
        channel_of(workspace, kind, {"url": httpserver.url_for(f"/{kind}")}) for kind in ("slack", "teams", "discord")
    ]
    channels += [
        channel_of(workspace, "webhook", {"url": httpserver.url_for("/hook")}),
        channel_of(workspace, "email", {"to": [team["admin"].email]}),
    ]
    rule = Rule.objects.create(workspace=workspace, name="r", events=["run.failed"], template=template)
    rule.channels.set(channels)

    events_match([{**sample_event("run.failed", workspace), "id": "e1"}])
    for delivery in Delivery.objects.all():
        assert delivery_send(delivery_id=delivery.pk).status == "sent", delivery.error

    sent = {request.path: request.get_json() for request, _ in httpserver.log}
    assert sent["/slack"]["blocks"] == [
        {"type": "section", "text": {"type": "mrkdwn", "text": "*Quarterly report* broke"}}
    ]
    card = sent["/teams"]["attachments"][0]["content"]
    assert (card["type"], card["body"]) == ("AdaptiveCard", [{"type": "TextBlock", "text": "Quarterly report broke"}])
    assert sent["/discord"]["embeds"][0]["title"] == "Quarterly report"
    assert sent["/discord"]["embeds"][0]["color"] == 1
    assert sent["/hook"]["data"]["subject"] == "Quarterly report failed"
    [mail] = mailoutbox
    html, mime = mail.alternatives[0]
    assert (mime, html) == ("text/html", "<h1>Quarterly report</h1><p>The model provider answered 503.</p>")
    assert mail.body.startswith("The model provider answered 503.")
