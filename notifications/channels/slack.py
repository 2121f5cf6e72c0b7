from notifications.channels.base import ChatWebhookKind, Message

# Slack's mrkdwn escapes only these three (api.slack.com/reference/surfaces/formatting#escaping).
_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


class SlackChannel(ChatWebhookKind):
    """A Slack incoming webhook: a Block Kit message (header, text, a button to the link) with `text` as
    the notification fallback. Slack answers 200 "ok", 400/403/404 for a bad or revoked hook, 429."""

    name = "slack"
    description = "Posts a Block Kit message to a Slack incoming webhook."

    @classmethod
    def body(cls, message: Message) -> dict:
        if isinstance(blocks := message.format("slack_blocks"), list):  # the template's own blocks
            return {"text": message.subject or message.body, "blocks": blocks}
        blocks = []
        if message.subject:
            blocks.append({"type": "header", "text": {"type": "plain_text", "text": message.subject[:150]}})
        if message.markdown:
            blocks.append(
                {"type": "section", "text": {"type": "mrkdwn", "text": message.markdown.translate(_ESCAPES)[:3000]}}
            )
        if message.link:
            button = {"type": "button", "text": {"type": "plain_text", "text": "Open"}, "url": message.link}
            blocks.append({"type": "actions", "elements": [button]})
        return {"text": message.subject or message.body, "blocks": blocks}
