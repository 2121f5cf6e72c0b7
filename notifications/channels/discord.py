import contextlib
import json

from notifications.channels.base import ChatWebhookKind, Message, Sent, classified
from workflows.engine.egress.client import EgressResponse

COLORS = {"info": 0x5865F2, "success": 0x57F287, "warning": 0xFEE75C, "error": 0xED4245}


class DiscordChannel(ChatWebhookKind):
    """A Discord webhook: one embed (title, description, link, a colour per level). Sent with `?wait=true`
    so that Discord answers with the message, whose id is recorded as the provider's id."""

    name = "discord"
    description = "Posts an embed to a Discord webhook."

    @classmethod
    def body(cls, message: Message) -> dict:
        embed: dict = {"color": COLORS.get(message.level, COLORS["info"])}
        if message.subject:
            embed["title"] = message.subject[:256]
        if message.markdown:
            embed["description"] = message.markdown[:4096]
        if message.link:
            embed["url"] = message.link
        own = message.format("discord_embed")  # the template's embed (or embeds), over these defaults
        embeds = [{**embed, **item} for item in own if isinstance(item, dict)] if isinstance(own, list) else []
        if isinstance(own, dict):
            embeds = [{**embed, **own}]
        return {"embeds": embeds[:10] or [embed], "allowed_mentions": {"parse": []}}

    @classmethod
    def url(cls, config: dict, secret: dict | None) -> str:
        url = super().url(config, secret)
        return url + ("&" if "?" in url else "?") + "wait=true"

    @classmethod
    def sent(cls, response: EgressResponse) -> Sent:
        sent = classified(response)
        with contextlib.suppress(ValueError, AttributeError):
            sent.provider_id = str(json.loads(response.body).get("id", ""))
        return sent
