"""Standard Webhooks signing (standardwebhooks.com), shared by the `webhook` node and the webhook
notification channel: the message id, the Unix time of signing, and
`v1,<base64 HMAC-SHA256 of '{id}.{timestamp}.{body}'>` keyed with a `whsec_<base64>` secret's bytes."""

import base64
import binascii
import hashlib
import hmac
import time

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret


def whsec_key(secret: str) -> bytes | None:
    """The decoded bytes of a `whsec_<base64>` secret; None for any other secret (or an empty key)."""
    if not secret.startswith(SECRET_PREFIX):
        return None
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True) or None
    except (binascii.Error, ValueError):
        return None


def signature_headers(key: bytes, *, message_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The three Standard Webhooks headers signing `body` with `key`."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signed = f"{message_id}.{stamp}.".encode() + body
    signature = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return {ID_HEADER: message_id, TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: f"v1,{signature}"}
