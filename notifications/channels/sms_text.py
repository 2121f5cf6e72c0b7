"""What the two SMS kinds share: the numbers they write to and the text they send."""

from notifications.channels.base import Message

# E.164: a plus, a country code not starting with 0, at most 15 digits in all.
E164_PATTERN = "^\\+[1-9][0-9]{6,14}$"
PHONE_NUMBERS_SCHEMA = {
    "description": "The numbers written to, in E.164 form (+14155550100). Users have no numbers of their own.",
    "type": "array",
    "items": {"type": "string", "pattern": E164_PATTERN},
    "minItems": 1,
    "maxItems": 20,
    "uniqueItems": True,
}
# Twilio's limit for one message's body; gateways are told the same.
MAX_SMS_CHARS = 1600


def sms_text(message: Message) -> str:
    """The subject, body and link on their own lines, empty ones left out, cut to MAX_SMS_CHARS."""
    text = "\n".join(part for part in (message.subject, message.body, message.link) if part.strip())
    return text if len(text) <= MAX_SMS_CHARS else text[: MAX_SMS_CHARS - 1] + "…"
