import base64
import contextlib
import json
from typing import Any
from urllib.parse import quote, urlencode

from notifications.channels.base import URL_SCHEMA, ChannelKind, DeliveryError, Errors, Message, Sent, classified, post
from notifications.channels.fanout import send_to_each
from notifications.channels.sms_text import E164_PATTERN, PHONE_NUMBERS_SCHEMA, sms_text

DEFAULT_BASE_URL = "https://api.twilio.com"
CREDENTIAL_REQUIRED = "Name an http_basic credential: the Account SID (or an API key SID) and its auth token."
SENDER_REQUIRED = "Give the sender: `from` (a number of the account) or `messaging_service_sid`."
ACCOUNT_SID_UNKNOWN = (
    "The account is unknown: set config.account_sid, or use the Account SID (AC…) as the credential's username."
)


class TwilioSmsChannel(ChannelKind):
    """SMS through Twilio's REST API, or any service that speaks it (`base_url`): one form-encoded POST
    to {base_url}/2010-04-01/Accounts/{sid}/Messages.json per number of `to`, with HTTP basic auth from
    an `http_basic` credential (an Account SID and auth token, or an API key SID and secret with
    `account_sid` set). The message's SID (`sid` in the answer) is kept as the provider's id.

    Twilio takes no idempotency key, so a send cut off by a crash counts as "may have been delivered";
    a retry after some numbers failed writes only to those (notifications.channels.fanout).
    """

    name = "sms_twilio"
    description = "Sends an SMS to each listed number through Twilio's Messages API."
    credential_kinds = ("http_basic",)
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["to"],
        "properties": {
            "to": PHONE_NUMBERS_SCHEMA,
            "from": {"description": "The sending number, in E.164 form.", "type": "string", "pattern": E164_PATTERN},
            "messaging_service_sid": {
                "description": "A Messaging Service to send from instead of (or besides) `from`.",
                "type": "string",
                "pattern": "^MG[0-9a-fA-F]{32}$",
            },
            "account_sid": {
                "description": "The account, when the credential holds an API key rather than the Account SID.",
                "type": "string",
                "pattern": "^AC[0-9a-fA-F]{32}$",
            },
            "base_url": {**URL_SCHEMA, "description": f"The API's root ({DEFAULT_BASE_URL} when absent)."},
        },
    }

    @classmethod
    def validate(cls, config: Any, *, credential: str) -> Errors:
        errors = super().validate(config, credential=credential)
        if not errors and not config.get("from") and not config.get("messaging_service_sid"):
            errors["config.from"] = [SENDER_REQUIRED]
        if not credential:
            errors["credential"] = [CREDENTIAL_REQUIRED]
        return errors

    @classmethod
    def send(cls, config: dict, secret: dict | None, message: Message) -> Sent:
        if secret is None:
            raise DeliveryError(CREDENTIAL_REQUIRED, permanent=True)
        account = config.get("account_sid") or secret["username"]
        if not account.startswith("AC"):
            raise DeliveryError(ACCOUNT_SID_UNKNOWN, permanent=True)
        base_url = config.get("base_url") or DEFAULT_BASE_URL
        url = f"{base_url.rstrip('/')}/2010-04-01/Accounts/{quote(account, safe='')}/Messages.json"
        pair = base64.b64encode(f"{secret['username']}:{secret['password']}".encode()).decode()
        headers = {
            "Authorization": f"Basic {pair}",
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
        sender = (
            {"MessagingServiceSid": config["messaging_service_sid"]}
            if config.get("messaging_service_sid")
            else {"From": config["from"]}
        )
        text = sms_text(message)

        def send_one(number: str) -> Sent:
            content = urlencode({"To": number, **sender, "Body": text}).encode()
            response = post(url, content=content, headers=headers)
            sent = classified(response)
            with contextlib.suppress(ValueError, AttributeError):
                sent.provider_id = str(json.loads(response.body).get("sid") or "")
            return sent

        return send_to_each(message, config["to"], send_one)
