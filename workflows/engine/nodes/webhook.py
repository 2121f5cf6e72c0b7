from workflows.engine.nodes.base import NodeType
from workflows.engine.nodes.schema import HEADERS, RETRY_ON_CRASH, TIMEOUT_SECONDS, credential_name


class WebhookNode(NodeType):
    """Send a JSON body to a URL, signed when a secret is named.

    With `secret`, the named credential's value signs the exact body bytes with HMAC-SHA256, sent as
    `X-Signature-256: sha256=<hex>`. The output is `{status, body}`. Not idempotent: the receiver may act
    on every delivery, so a call interrupted by a crash is only re-sent when `retry_on_crash` is set.
    """

    name = "webhook"
    description = "Sends a JSON body to a URL, HMAC-signed when a secret is set."
    idempotent = False
    template_fields = ("url", "headers", "body")
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["url"],
        "properties": {
            "url": {"description": "The URL to call (template).", "type": "string", "minLength": 1, "maxLength": 2048},
            "method": {"description": "The HTTP method.", "enum": ["POST", "PUT", "PATCH"], "default": "POST"},
            "headers": HEADERS,
            "body": {"description": "The JSON body; every string inside it is a template."},
            "secret": credential_name(
                "Name of the workspace credential whose value signs the body (never the secret)."
            ),
            "timeout": TIMEOUT_SECONDS,
            "retry_on_crash": RETRY_ON_CRASH,
        },
    }
