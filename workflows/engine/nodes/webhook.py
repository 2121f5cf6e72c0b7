import hashlib
import hmac
import json

from workflows.credentials import credential_value
from workflows.engine.nodes.base import NodeResult, NodeType
from workflows.engine.nodes.http import response_body, send
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
            digest = hmac.new(secret["secret"].encode(), payload, hashlib.sha256).hexdigest()
            headers[SIGNATURE_HEADER] = f"sha256={digest}"
        response = send(
            config.get("method", "POST"),
            config["url"],
            context,
            headers=headers,
            content=payload,
            timeout=config.get("timeout", 30),
        )
        return NodeResult(output={"status": response.status, "body": response_body(response)})


SIGNATURE_HEADER = "X-Signature-256"
