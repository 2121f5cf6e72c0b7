from notifications.channels.base import ChatWebhookKind, Message

COLORS = {"info": "Default", "success": "Good", "warning": "Warning", "error": "Attention"}


class TeamsChannel(ChatWebhookKind):
    """A Microsoft Teams workflow webhook (Power Automate's "post to a channel when a webhook request
    is received"): a message carrying one Adaptive Card. It answers 202 when it accepts the message."""

    name = "teams"
    description = "Posts an Adaptive Card to a Microsoft Teams workflow webhook."

    @classmethod
    def body(cls, message: Message) -> dict:
        card: dict = {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": "1.4",
            "body": [],
        }
        if message.subject:
            card["body"].append(
                {
                    "type": "TextBlock",
                    "text": message.subject,
                    "weight": "Bolder",
                    "size": "Medium",
                    "wrap": True,
                    "color": COLORS.get(message.level, "Default"),
                }
            )
        if message.markdown:
            card["body"].append({"type": "TextBlock", "text": message.markdown, "wrap": True})
        if message.link:
            card["actions"] = [{"type": "Action.OpenUrl", "title": "Open", "url": message.link}]
        own = message.format("teams_card")  # the template's card, whole or as the card's body
        if isinstance(own, dict):
            card = own if own.get("type") == "AdaptiveCard" else {**card, **own}
        elif isinstance(own, list):
            card["body"] = own
        attachment = {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        return {"type": "message", "attachments": [attachment]}
