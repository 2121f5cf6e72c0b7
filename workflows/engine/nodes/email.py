from smtplib import SMTPException

from django.core.mail import EmailMessage

from workflows.engine.errors import TransientError
from workflows.engine.nodes.base import NodeResult, NodeType

ADDRESSES = {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 998}, "maxItems": 50}


class EmailNode(NodeType):
    """Send one email through Django's email backend.

    Addresses, subject and body are templates; with `html` the body is sent as HTML. The output is
    `{sent}`, the number of messages the backend accepted. Not idempotent: a crash after sending and
    before the step is recorded would send the email twice if re-run.
    """

    name = "email"
    description = "Sends an email through the configured email backend."
    idempotent = False
    template_fields = ("to", "cc", "bcc", "subject", "body")
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["to", "subject", "body"],
        "properties": {
            "to": {"description": "Recipient addresses (templates).", **ADDRESSES, "minItems": 1},
            "cc": {"description": "Copy addresses (templates).", **ADDRESSES},
            "bcc": {"description": "Blind-copy addresses (templates).", **ADDRESSES},
            "subject": {
                "description": "The subject line (template).",
                "type": "string",
                "minLength": 1,
                "maxLength": 998,
            },
            "body": {"description": "The message body (template).", "type": "string"},
            "html": {"description": "Whether the body is HTML.", "type": "boolean", "default": False},
        },
    }

    queue = "notifications"

    @classmethod
    def execute(cls, prepared: dict, context) -> NodeResult:
        config = prepared["config"]
        message = EmailMessage(
            subject=config["subject"],
            body=config["body"],
            to=config["to"],
            cc=config.get("cc", []),
            bcc=config.get("bcc", []),
            headers={"X-DWC-Run": context.run_id, "X-DWC-Idempotency-Key": context.idempotency_key},
        )
        if config.get("html"):
            message.content_subtype = "html"
        try:
            sent = message.send()
        except (SMTPException, OSError) as error:
            raise TransientError(f"The mail server refused or failed: {error}") from error
        return NodeResult(output={"sent": sent, "to": config["to"]})
