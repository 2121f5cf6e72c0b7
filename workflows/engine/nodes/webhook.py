import base64
import binascii
import hashlib
import hmac
import json
import time

from workflows.credentials import credential_value
from workflows.engine.nodes.base import NodeResult, NodeType
from workflows.engine.nodes.outbound import response_body, send
from workflows.engine.nodes.schema import HEADERS, RETRY_ON_CRASH, TIMEOUT_SECONDS, credential_name

# Standard Webhooks (standardwebhooks.com): the message id, when it was signed, and
# "v1,<base64 HMAC-SHA256 of '{id}.{timestamp}.{body}'>".
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
# The signature this node sent before it followed Standard Webhooks: the body alone, no timestamp, so
# a captured delivery verifies forever. Kept for receivers that check it; new ones should not.
LEGACY_SIGNATURE_HEADER = "X-Signature-256"
SIGNATURE_HEADERS = (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER, LEGACY_SIGNATURE_HEADER)
STANDARD_SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret


class WebhookNode(NodeType):
    """Send a JSON body to a URL, signed when a secret is named.

    With `secret`, the named `hmac_secret` credential signs the exact body bytes the Standard Webhooks
    way: `webhook-id` (the step's idempotency key, the same on every retry), `webhook-timestamp` (Unix
    seconds at sending) and `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
    The HMAC key is the secret's UTF-8 bytes, or for a `whsec_<base64>` secret the decoded bytes, as
    the standard's libraries read it. `X-Signature-256: sha256=<hex HMAC of the body>` is sent too, for
    older receivers. None of these headers follows a redirect to another origin.
    The output is `{status, body}`. Not idempotent: the receiver may act on every delivery, so a call
    interrupted by a crash is only re-sent when `retry_on_crash` is set.
    """

    name = "webhook"
    description = "Sends a JSON body to a URL, HMAC-signed (Standard Webhooks) when a secret is set."
    idempotent = False
    queue = "calls"
    template_fields = ("url", "headers")
    value_fields = ("body",)
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["url"],
        "properties": {
            "url": {"description": "The URL to call (template).", "type": "string", "minLength": 1, "maxLength": 2048},
            "method": {"description": "The HTTP method.", "enum": ["POST", "PUT", "PATCH"], "default": "POST"},
            "headers": HEADERS,
            "body": {
                "description": "The JSON body; every string inside it is a template, and one that is exactly one "
                "`{{ expression }}` keeps the expression's type."
            },
            "secret": credential_name(
                "Name of the workspace credential whose value signs the body (never the secret)."
            ),
            "timeout": TIMEOUT_SECONDS,
            "retry_on_crash": RETRY_ON_CRASH,
        },
    }

    @classmethod
    def execute(cls, prepared: dict, context) -> NodeResult:
        config = prepared["config"]
        # Signed bytes are sent bytes: serialize once, sign that, send that.
        payload = json.dumps(config.get("body", {}), separators=(",", ":"), ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", **config.get("headers", {})}
        if "secret" in config:
            secret = credential_value(workspace_id=context.workspace_id, name=config["secret"], kinds=("hmac_secret",))
            headers = {
                **_without(headers, SIGNATURE_HEADERS),
                **signature_headers(secret["secret"], message_id=context.idempotency_key, body=payload),
            }
        response = send(
            config.get("method", "POST"),
            config["url"],
            context,
            headers=headers,
            content=payload,
            timeout=config.get("timeout", 30),
            secret_headers=SIGNATURE_HEADERS,
        )
        return NodeResult(output={"status": response.status, "body": response_body(response)})


def signature_headers(secret: str, *, message_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The Standard Webhooks headers for `body`, and the legacy X-Signature-256."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    signed = f"{message_id}.{stamp}.".encode() + body
    signature = base64.b64encode(hmac.new(signing_key(secret), signed, hashlib.sha256).digest()).decode()
    legacy = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        ID_HEADER: message_id,
        TIMESTAMP_HEADER: stamp,
        SIGNATURE_HEADER: f"v1,{signature}",
        LEGACY_SIGNATURE_HEADER: f"sha256={legacy}",
    }


def signing_key(secret: str) -> bytes:
    """The HMAC key of a secret: a `whsec_<base64>` secret's decoded bytes, any other secret's UTF-8 bytes."""
    if secret.startswith(STANDARD_SECRET_PREFIX):
        encoded = secret.removeprefix(STANDARD_SECRET_PREFIX)
        try:
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if key:
            return key
    return secret.encode()


def _without(headers: dict[str, str], names: tuple[str, ...]) -> dict[str, str]:
    # A configured header of the same name (any case) must not sit beside the signature as a second value.
    dropped = {name.lower() for name in names}
    return {name: value for name, value in headers.items() if name.lower() not in dropped}
