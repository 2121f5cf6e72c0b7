import json
import time

from core import standard_webhooks
from core.standard_webhooks import ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER
from notifications.channels.base import URL_SCHEMA, ChannelKind, DeliveryError, Message, Sent, classified, post

SIGNATURE_HEADERS = (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER)
# Headers the channel sets itself, in any letter case (JSON Schema patterns have no flags).
RESERVED_HEADERS = (
    "^([Ww][Ee][Bb][Hh][Oo][Oo][Kk]-([Ii][Dd]|[Tt][Ii][Mm][Ee][Ss][Tt][Aa][Mm][Pp]|[Ss][Ii][Gg][Nn][Aa][Tt][Uu][Rr][Ee])"
    "|[Cc][Oo][Nn][Tt][Ee][Nn][Tt]-[Tt][Yy][Pp][Ee])$"
)
SECRET_INVALID = "The credential's secret must be whsec_ followed by base64 (Standard Webhooks)."  # noqa: S105 - a message


class WebhookChannel(ChannelKind):
    """A JSON POST to any URL, signed the Standard Webhooks way with the `hmac_secret` credential.

    The body is `{id, type, timestamp, data: {subject, body, link, level, ...payload}}`. `webhook-id` is
    the delivery's idempotency key, the same on every attempt and on a resend, so receivers that follow
    the standard drop repeats: a send cut off by a crash is sent again rather than written off.
    """

    name = "webhook"
    description = "POSTs a JSON event, signed with Standard Webhooks headers, to a URL."
    credential_kinds = ("hmac_secret",)
    accepts_idempotency_key = True
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["url"],
        "properties": {
            "url": URL_SCHEMA,
            "headers": {
                "description": "Extra request headers (no secrets: those go in the credential).",
                "type": "object",
                "maxProperties": 20,
                "propertyNames": {"pattern": "^[A-Za-z0-9-]{1,100}$", "not": {"pattern": RESERVED_HEADERS}},
                "additionalProperties": {"type": "string", "maxLength": 1000},
            },
        },
    }

    @classmethod
    def send(cls, config: dict, secret: dict | None, message: Message) -> Sent:
        event = {
            "id": message.idempotency_key,
            "type": message.payload.get("type", "notification"),
            "timestamp": int(time.time()),
            "data": {
                "subject": message.subject,
                "body": message.body,
                "link": message.link,
                "level": message.level,
                **{key: value for key, value in message.payload.items() if key != "type"},
            },
        }
        # Signed bytes are sent bytes: serialize once, sign that, send that.
        content = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
        headers = dict(config.get("headers", {}))
        headers[ID_HEADER] = message.idempotency_key
        if secret is not None:
            headers.update(signature_headers(secret["secret"], message_id=message.idempotency_key, body=content))
        response = post(config["url"], content=content, headers=headers, secret_headers=SIGNATURE_HEADERS)
        return classified(response)


def signature_headers(secret: str, *, message_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The Standard Webhooks headers signing `body` (core.standard_webhooks). Unlike the `webhook` node,
    a channel takes only a `whsec_<base64>` secret: anything else is a permanent error."""
    key = standard_webhooks.whsec_key(secret)
    if key is None:
        raise DeliveryError(SECRET_INVALID, permanent=True)
    return standard_webhooks.signature_headers(key, message_id=message_id, body=body, timestamp=timestamp)
