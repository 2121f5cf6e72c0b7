from html import escape
from smtplib import SMTPException, SMTPRecipientsRefused, SMTPResponseException
from urllib.parse import quote

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection

from accounts.email_recipients import RECIPIENT_NOT_ALLOWED, email_recipients_not_allowed
from notifications.channels.base import ChannelKind, DeliveryError, Message, Sent
from notifications.unsubscribe import unsubscribe_url

NO_RECIPIENTS = "Nobody to write to: the channel lists no address and the delivery has no recipient."
SMTP_FAILED = "The mail server refused or failed: {error}"


class EmailChannel(ChannelKind):
    """Email through Django's email backend: a text body with an HTML alternative, to `config.to` and the
    delivery's recipient, each of them one the workspace may write to (DWC_EMAIL_ALLOWED_DOMAINS, its
    own domains, its members). Carries `List-Unsubscribe` (RFC 2369): the recipient user gets a message
    of their own whose link is their signed one-click unsubscribe (RFC 8058, `List-Unsubscribe-Post`),
    which no other address may see; the channel's other addresses share one naming
    DWC_NOTIFICATIONS_UNSUBSCRIBE_MAILTO. Both go over one SMTP connection.

    SMTP has no idempotency key that receivers honour, so a send cut off by a crash is written off as
    "may have been delivered". A 5xx reply is permanent, a 4xx one or a broken connection transient.
    """

    name = "email"
    description = "Sends an email (text and HTML) through the server's mail settings."
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "to": {
                "description": "Addresses written to, besides the delivery's recipient.",
                "type": "array",
                "items": {"type": "string", "format": "email", "pattern": "^[^@\\s<>,]+@[^@\\s<>,]+$"},
                "maxItems": 50,
                "uniqueItems": True,
            }
        },
    }

    @classmethod
    def send(cls, config: dict, secret: dict | None, message: Message) -> Sent:
        to = list(config.get("to", []))
        if message.recipient_email and message.recipient_email not in to:
            to.append(message.recipient_email)
        if not to:
            raise DeliveryError(NO_RECIPIENTS, permanent=True)
        refused = email_recipients_not_allowed(workspace_id=message.workspace_id, addresses=to)
        if refused:
            raise DeliveryError(RECIPIENT_NOT_ALLOWED.format(address=refused[0]), permanent=True)
        text = f"{message.body}\n\n{message.link}" if message.link else message.body
        domain = settings.DEFAULT_FROM_EMAIL.rpartition("@")[2] or "dwc"
        message_id = f"<{message.idempotency_key}@{domain}>"
        user_address = message.recipient_email if message.recipient_id is not None else ""
        others = [address for address in to if address != user_address]
        mailto = settings.DWC_NOTIFICATIONS_UNSUBSCRIBE_MAILTO
        emails = []
        if user_address:
            one_click = {
                "List-Unsubscribe": f"<{unsubscribe_url(user_id=message.recipient_id, kind=cls.name)}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            }
            emails.append(cls.email(message, text, [user_address], message_id, one_click))
        if others:
            by_mail = {"List-Unsubscribe": f"<mailto:{mailto}?subject={quote('unsubscribe ' + message.workspace_id)}>"}
            # A second message needs an id of its own.
            others_id = f"<{message.idempotency_key}.list@{domain}>" if user_address else message_id
            emails.append(cls.email(message, text, others, others_id, by_mail))
        try:
            with get_connection() as connection:
                connection.send_messages(emails)
        except SMTPRecipientsRefused as error:
            codes = [code for code, _ in error.recipients.values()]
            raise DeliveryError(
                SMTP_FAILED.format(error=error), permanent=all(code >= 500 for code in codes)
            ) from error
        except SMTPResponseException as error:
            raise DeliveryError(
                SMTP_FAILED.format(error=error), permanent=error.smtp_code >= 500, response_code=error.smtp_code
            ) from error
        except (SMTPException, OSError) as error:
            raise DeliveryError(SMTP_FAILED.format(error=error), permanent=False) from error
        return Sent(provider_id=message_id)

    @classmethod
    def email(
        cls, message: Message, text: str, to: list[str], message_id: str, headers: dict[str, str]
    ) -> EmailMultiAlternatives:
        email = EmailMultiAlternatives(
            subject=message.subject or message.body[:80],
            body=text,
            to=to,
            headers={"Message-ID": message_id, **headers, "X-DWC-Idempotency-Key": message.idempotency_key},
        )
        html = message.format("html")  # the template's HTML, else ours from the text
        email.attach_alternative(html if isinstance(html, str) else cls.html(message), "text/html")
        return email

    @staticmethod
    def html(message: Message) -> str:
        paragraphs = "".join(f"<p>{escape(part).replace(chr(10), '<br>')}</p>" for part in message.body.split("\n\n"))
        link = f'<p><a href="{escape(message.link)}">Open</a></p>' if message.link else ""
        return f"<!doctype html><html><body><h2>{escape(message.subject)}</h2>{paragraphs}{link}</body></html>"
