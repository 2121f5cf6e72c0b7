import hashlib
import hmac
import json

from core import standard_webhooks
from core.standard_webhooks import ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER
from workflows.credentials import credential_value
from workflows.engine.nodes.base import NodeResult, NodeType
from workflows.engine.nodes.outbound import response_body, send
from workflows.engine.nodes.schema import HEADERS, RETRY_ON_CRASH, TIMEOUT_SECONDS, credential_name

# The signature this node sent before it followed Standard Webhooks: the body alone, no timestamp, so
# a captured delivery verifies forever. Kept for receivers that check it; new ones should not.
LEGACY_SIGNATURE_HEADER = "X-Signature-256"
SIGNATURE_HEADERS = (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER, LEGACY_SIGNATURE_HEADER)


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
    group = "integrations"
    example = {
        "key": "notify_crm",
        "config": {
            "url": "https://hooks.example.com/dwc",
            "body": {"title": "{{ nodes.outline.title }}"},
            "secret": "crm-webhook-secret",
        },
    }
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
    """The Standard Webhooks headers for `body` (core.standard_webhooks), and the legacy X-Signature-256."""
    legacy = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    standard = standard_webhooks.signature_headers(
        signing_key(secret), message_id=message_id, body=body, timestamp=timestamp
    )
    return {**standard, LEGACY_SIGNATURE_HEADER: f"sha256={legacy}"}


def signing_key(secret: str) -> bytes:
    """The HMAC key of a secret: a `whsec_<base64>` secret's decoded bytes, any other secret's UTF-8 bytes."""
    return standard_webhooks.whsec_key(secret) or secret.encode()


def _without(headers: dict[str, str], names: tuple[str, ...]) -> dict[str, str]:
    # A configured header of the same name (any case) must not sit beside the signature as a second value.
    dropped = {name.lower() for name in names}
    return {name: value for name, value in headers.items() if name.lower() not in dropped}
