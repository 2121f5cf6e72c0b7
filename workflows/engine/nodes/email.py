from email.utils import formataddr, getaddresses
from smtplib import SMTPException

from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage, get_connection
from django.core.validators import validate_email

from accounts.email_recipients import RECIPIENT_NOT_ALLOWED, email_recipients_not_allowed
from workflows.engine import cancellation
from workflows.engine.errors import PermanentError, TransientError
from workflows.engine.nodes.base import NodeResult, NodeType

ADDRESSES = {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 998}, "maxItems": 50}
NOT_ONE_ADDRESS = "Each recipient must be one email address, with or without a name; {entry!r} is not."


def _recipients(entries: list[str]) -> list[tuple[str, str]]:
    """(the entry as sent, its bare address) for each entry. An entry is sent as it was parsed here,
    so the address checked is the address mailed whatever the mail library would make of the text."""
    recipients = []
    for entry in entries:
        parsed = getaddresses([entry])
        try:
            [(name, address)] = parsed
            validate_email(address)
        except (ValueError, ValidationError) as error:
            raise PermanentError(NOT_ONE_ADDRESS.format(entry=entry)) from error
        recipients.append((formataddr((name, address)), address))
    return recipients


class EmailNode(NodeType):
    """Send one email through Django's email backend.

    Addresses, subject and body are templates; with `html` the body is sent as HTML. The output is
    `{sent}`, the number of messages the backend accepted. Not idempotent: a crash after sending and
    before the step is recorded would send the email twice if re-run. Recipients the workspace may not
    mail (accounts.email_recipients) fail the step, permanently, before anything is sent.
    """

    name = "email"
    group = "integrations"
    example = {
        "key": "send",
        "config": {
            "to": ["editor@example.com"],
            "subject": "Draft: {{ input.topic }}",
            "body": "{{ nodes.outline.content }}",
        },
    }
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
        to, cc, bcc = (_recipients(config.get(field, [])) for field in ("to", "cc", "bcc"))
        addresses = [address for _, address in to + cc + bcc]
        refused = email_recipients_not_allowed(workspace_id=context.workspace_id, addresses=addresses)
        if refused:
            raise PermanentError(RECIPIENT_NOT_ALLOWED.format(address=refused[0]))
        message = EmailMessage(
            subject=config["subject"],
            body=config["body"],
            to=[entry for entry, _ in to],
            cc=[entry for entry, _ in cc],
            bcc=[entry for entry, _ in bcc],
            headers={"X-DWC-Run": context.run_id, "X-DWC-Idempotency-Key": context.idempotency_key},
        )
        if config.get("html"):
            message.content_subtype = "html"
        return NodeResult(output={"sent": _send_stoppably(message), "to": config["to"]})


def _send_stoppably(message: EmailMessage) -> int:
    """Send through the configured backend; a cancel of the step cuts an SMTP send off mid-way.

    The SMTP connection is opened first so that its socket can join the step's cancel scope: when the
    run is cancelled (or the step taken over) the heartbeat shuts it down and the send fails at once,
    as "stopped", instead of running to its end. Opening it (connect, greeting, STARTTLS, login) is
    bounded by EMAIL_TIMEOUT only. Backends without a socket (console, file, memory) just send.
    """
    stoppable = cancellation.current()
    if stoppable is not None:
        stoppable.check()
    backend = get_connection()
    try:
        backend.open()
        smtp = getattr(backend, "connection", None)  # smtplib.SMTP of Django's SMTP backend, once open
        sock = getattr(smtp, "sock", None)
        if stoppable is not None and sock is not None:
            stoppable.add_socket(sock)
        return backend.send_messages([message])
    except (SMTPException, OSError) as error:
        if stoppable is not None and stoppable.cancelled:
            raise cancellation.StepStopped(cancellation.STEP_STOPPED) from error
        raise TransientError(f"The mail server refused or failed: {error}") from error
    finally:
        _close_quietly(backend)


def _close_quietly(backend) -> None:
    # After a failed or cut-off send, QUIT on a dead connection may fail too: the send's own error is
    # what counts. smtplib's close() then just closes the socket.
    smtp = getattr(backend, "connection", None)
    try:
        backend.close()
    except (SMTPException, OSError):
        if smtp is not None:
            smtp.close()
