import base64
import contextlib
import json
from typing import Any
from urllib.parse import urlencode

from notifications.channels.base import URL_SCHEMA, ChannelKind, DeliveryError, Errors, Message, Sent, classified, post
from notifications.channels.fanout import send_to_each
from notifications.channels.sms_text import PHONE_NUMBERS_SCHEMA, sms_text
from workflows.engine.errors import PermanentError
from workflows.engine.expressions.checking import template_errors
from workflows.engine.expressions.rendering import render_strings, render_value

# Headers the channel sets itself (the body's type) or that hold secrets (those go in the credential).
RESERVED_HEADERS = (
    "^([Cc][Oo][Nn][Tt][Ee][Nn][Tt]-[Tt][Yy][Pp][Ee]|[Aa][Uu][Tt][Hh][Oo][Rr][Ii][Zz][Aa][Tt][Ii][Oo][Nn])$"
)
FORM_VALUE_NOT_TEXT = "A form body's values are text templates."
TEMPLATE_FAILED = "The gateway body's template failed: {error}"
CONTENT_TYPES = {"json": "application/json", "form": "application/x-www-form-urlencoded"}


class SmsGatewayChannel(ChannelKind):
    """SMS through any HTTP gateway: one POST to `url` per number of `to`, its body built from `body`,
    a JSON object (`format: json`) or form fields (`format: form`) whose strings are templates in the
    product's sandboxed language with `to` (the number), `message` (subject, body and link as one
    text), `subject`, `link` and `level`. In a JSON body a string that is exactly `{{ expression }}`
    keeps the expression's type. Templates are parsed when the channel is saved.

    One request per number, because that is what gateways commonly take and what lets a retry write
    only to the numbers that failed (notifications.channels.fanout). Auth from an optional credential:
    `http_bearer`, `http_basic` or `http_header`. `id_field` names the answer's field holding the
    message's id, kept as the provider's id.
    """

    name = "sms_gateway"
    description = "Sends an SMS to each listed number through an HTTP gateway, with a body you write."
    credential_kinds = ("http_bearer", "http_basic", "http_header")
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["url", "to", "body"],
        "properties": {
            "url": URL_SCHEMA,
            "to": PHONE_NUMBERS_SCHEMA,
            "format": {"description": "How the body is sent (json when absent).", "enum": ["json", "form"]},
            "body": {
                "description": "The request body; its strings are templates with to, message, subject, link, level.",
                "type": "object",
                "maxProperties": 50,
            },
            "headers": {
                "description": "Extra request headers (no secrets: those go in the credential).",
                "type": "object",
                "maxProperties": 20,
                "propertyNames": {"pattern": "^[A-Za-z0-9-]{1,100}$", "not": {"pattern": RESERVED_HEADERS}},
                "additionalProperties": {"type": "string", "maxLength": 1000},
            },
            "id_field": {
                "description": "The field of the gateway's JSON answer that holds the message's id.",
                "type": "string",
                "maxLength": 100,
            },
        },
    }

    @classmethod
    def validate(cls, config: Any, *, credential: str) -> Errors:
        errors = super().validate(config, credential=credential)
        if errors:
            return errors
        form = config.get("format") == "form"
        for path, value in config["body"].items():
            if form and not isinstance(value, str):
                errors[f"config.body.{path}"] = [FORM_VALUE_NOT_TEXT]
        for path, problems in template_errors(config["body"], "config.body").items():
            errors.setdefault(path, []).extend(problems)
        return errors

    @classmethod
    def send(cls, config: dict, secret: dict | None, message: Message) -> Sent:
        form = config.get("format") == "form"
        headers = {
            **config.get("headers", {}),
            **auth_headers(secret),
            "Content-Type": CONTENT_TYPES["form" if form else "json"],
        }
        secret_headers = tuple(auth_headers(secret))
        variables = {
            "message": sms_text(message),
            "subject": message.subject,
            "link": message.link,
            "level": message.level,
        }

        def send_one(number: str) -> Sent:
            context = {**variables, "to": number}
            try:
                if form:
                    content = urlencode(render_strings(config["body"], context)).encode()
                else:
                    body = render_value(config["body"], context)
                    content = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
            except PermanentError as error:
                raise DeliveryError(TEMPLATE_FAILED.format(error=error.message), permanent=True) from error
            response = post(config["url"], content=content, headers=headers, secret_headers=secret_headers)
            sent = classified(response)
            if config.get("id_field"):
                with contextlib.suppress(ValueError, AttributeError):
                    sent.provider_id = str(json.loads(response.body).get(config["id_field"]) or "")
            return sent

        return send_to_each(message, config["to"], send_one)


def auth_headers(secret: dict | None) -> dict[str, str]:
    """The header a credential's value becomes: a bearer token, basic auth, or a named header."""
    if secret is None:
        return {}
    if "token" in secret:
        return {"Authorization": f"Bearer {secret['token']}"}
    if "username" in secret:
        pair = base64.b64encode(f"{secret['username']}:{secret['password']}".encode()).decode()
        return {"Authorization": f"Basic {pair}"}
    return {secret["name"]: secret["value"]}
