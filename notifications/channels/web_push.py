"""Web Push (RFC 8030) to users' browsers: the payload encrypted for each subscription (RFC 8291,
aes128gcm, by pywebpush) and the request signed with the server's VAPID key (RFC 8292, by py_vapid),
then POSTed through the egress client like every other channel's call, so SSRF rules apply to push
endpoints too."""

import base64
import json
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from django.utils import timezone
from py_vapid import Vapid, VapidException
from pywebpush import WebPusher, WebPushException

from notifications.channels.base import (
    MEMBERS_CONFIG_SCHEMA,
    ChannelKind,
    DeliveryError,
    Message,
    Sent,
    classified,
    members_reached,
    post,
)
from notifications.channels.fanout import send_to_each
from notifications.models import PushSubscription

NOT_CONFIGURED = "Web Push is not configured: set DWC_WEBPUSH_VAPID_PRIVATE_KEY (manage.py webpush_keys makes a pair)."
KEY_INVALID = "DWC_WEBPUSH_VAPID_PRIVATE_KEY is not a P-256 private key (raw base64url or DER)."
KEYS_DIFFER = "DWC_WEBPUSH_VAPID_PUBLIC_KEY is not the public half of DWC_WEBPUSH_VAPID_PRIVATE_KEY."
SUBJECT_INVALID = "DWC_WEBPUSH_SUBJECT must be a mailto: or https: URL."
NO_SUBSCRIPTIONS = "nobody to notify has a browser subscribed to push notifications"
SUBSCRIPTION_UNREADABLE = "The subscription's keys cannot be used: {error}"
# How long a push service keeps a message for a browser that is offline.
TTL_SECONDS = 24 * 3600
# A push message carries at most 4096 bytes; aes128gcm adds 103 (header, tag, delimiter).
MAX_PAYLOAD_BYTES = 3900
# The VAPID token's lifetime (RFC 8292 allows at most a day).
TOKEN_SECONDS = 12 * 3600


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    """base64url with or without padding; ValueError (binascii.Error) if it is not."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class VapidKeys:
    vapid: Vapid
    public_key: str  # base64url of the uncompressed point: the browsers' applicationServerKey


def vapid_keys() -> VapidKeys | None:
    """The configured VAPID key pair; None when no private key is set. Raises DeliveryError (permanent)
    for a key that cannot be read or a public key that is not the private key's."""
    private = settings.DWC_WEBPUSH_VAPID_PRIVATE_KEY.strip()
    if not private:
        return None
    try:
        vapid = Vapid.from_string(private)
    except (ValueError, TypeError, VapidException) as error:
        raise DeliveryError(KEY_INVALID, permanent=True) from error
    point = vapid.public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    public = b64url(point)
    configured = settings.DWC_WEBPUSH_VAPID_PUBLIC_KEY.strip().rstrip("=")
    if configured and configured != public:
        raise DeliveryError(KEYS_DIFFER, permanent=True)
    return VapidKeys(vapid=vapid, public_key=public)


def vapid_keys_generate() -> tuple[str, str]:
    """A new key pair as (private, public), both base64url, as DWC_WEBPUSH_VAPID_* take them."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_numbers().private_value.to_bytes(32, "big")
    public = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return b64url(private), b64url(public)


def push_payload(message: Message) -> bytes:
    """What the service worker receives: {title, body, link, level, id}, the body cut to fit a push."""
    payload = {
        "title": (message.subject or message.body[:120])[:200],
        "body": message.body,
        "link": message.link,
        "level": message.level,
        "id": message.delivery_id,
    }
    data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    while len(data) > MAX_PAYLOAD_BYTES:
        payload["body"] = payload["body"][: max(0, len(payload["body"]) - (len(data) - MAX_PAYLOAD_BYTES) - 1)] + "…"
        data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return data


def _origin(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}"


class WebPushChannel(ChannelKind):
    """Browser notifications: the delivery's recipient's subscribed browsers, or else those of every
    member of the workspace holding one of `roles` (all members when absent). One request per browser;
    a push service answering 404 or 410 says the subscription is gone, and it is deleted.

    Push services take no idempotency key, so a send cut off by a crash counts as "may have been
    delivered"; a retry after some browsers failed sends to those only (fanout), and the service
    worker tags each notification with the delivery's id, so a browser shows a repeat in place of the
    first rather than beside it.
    """

    name = "web_push"
    description = "Shows a notification in the subscribed browsers of the recipient or the workspace's members."
    config_schema = MEMBERS_CONFIG_SCHEMA

    @classmethod
    def send(cls, config: dict, secret: dict | None, message: Message) -> Sent:
        keys = vapid_keys()
        if keys is None:
            raise DeliveryError(NOT_CONFIGURED, permanent=True)
        if message.recipient_id is not None:
            subscriptions = PushSubscription.objects.filter(user_id=message.recipient_id)
        else:
            subscriptions = PushSubscription.objects.filter(user__in=members_reached(message, config, cls.name))
        by_id = {str(subscription.pk): subscription for subscription in subscriptions}
        payload = push_payload(message)
        urgency = "high" if message.level in ("error", "warning") else "normal"

        def send_one(subscription_id: str) -> Sent | None:
            subscription = by_id[subscription_id]
            try:
                body = WebPusher(
                    {
                        "endpoint": subscription.endpoint,
                        "keys": {"p256dh": subscription.p256dh, "auth": subscription.auth},
                    }
                ).encode(payload, content_encoding="aes128gcm")["body"]
            except (WebPushException, ValueError) as error:
                raise DeliveryError(SUBSCRIPTION_UNREADABLE.format(error=error), permanent=True) from error
            try:
                claims = {"aud": _origin(subscription.endpoint), "sub": settings.DWC_WEBPUSH_SUBJECT}
                claims["exp"] = int(time.time()) + TOKEN_SECONDS
                authorization = keys.vapid.sign(claims)["Authorization"]
            except VapidException as error:
                raise DeliveryError(SUBJECT_INVALID, permanent=True) from error
            headers = {
                "Authorization": authorization,
                "Content-Type": "application/octet-stream",
                "Content-Encoding": "aes128gcm",
                "TTL": str(TTL_SECONDS),
                "Urgency": urgency,
            }
            response = post(subscription.endpoint, content=body, headers=headers)
            if response.status in (404, 410):
                # The browser unsubscribed or the subscription expired: it will never take a message again.
                PushSubscription.objects.filter(pk=subscription.pk).delete()
                return None
            sent = classified(response)
            sent.provider_id = response.headers.get("location", "")
            PushSubscription.objects.filter(pk=subscription.pk).update(last_used_at=timezone.now())
            return sent

        return send_to_each(message, list(by_id), send_one, gone_reason=NO_SUBSCRIPTIONS)
