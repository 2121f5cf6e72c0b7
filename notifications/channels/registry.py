"""Channel kinds, as stored in `Channel.kind`, mapped to their classes."""

from notifications.channels.base import ChannelKind
from notifications.channels.discord import DiscordChannel
from notifications.channels.email import EmailChannel
from notifications.channels.in_app import InAppChannel
from notifications.channels.slack import SlackChannel
from notifications.channels.sms_gateway import SmsGatewayChannel
from notifications.channels.sms_twilio import TwilioSmsChannel
from notifications.channels.teams import TeamsChannel
from notifications.channels.web_push import WebPushChannel
from notifications.channels.webhook import WebhookChannel

CHANNEL_KINDS: dict[str, type[ChannelKind]] = {
    "webhook": WebhookChannel,
    "slack": SlackChannel,
    "teams": TeamsChannel,
    "discord": DiscordChannel,
    "in_app": InAppChannel,
    "email": EmailChannel,
    "sms_twilio": TwilioSmsChannel,
    "sms_gateway": SmsGatewayChannel,
    "web_push": WebPushChannel,
}


def channel_kind_get(name: str) -> type[ChannelKind]:
    """The class of the channel kind called `name`; raises KeyError for an unknown name."""
    try:
        return CHANNEL_KINDS[name]
    except KeyError:
        raise KeyError(f"Unknown channel kind {name!r}; expected one of {', '.join(CHANNEL_KINDS)}.") from None
