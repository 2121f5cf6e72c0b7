"""What every channel kind declares (its config schema, the credential kinds it takes, whether it honours
an idempotency key) and the one way it fails: DeliveryError, permanent or transient."""

import json
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit

from django.conf import settings
from django.db.models import Q, QuerySet
from jsonschema import Draft202012Validator

from accounts.models import Membership
from core.retry_after import retry_after_seconds
from notifications.models import Preference
from workflows.engine.egress.client import EgressResponse, request
from workflows.engine.errors import StepError

Errors = dict[str, list[str]]
MAX_ERROR_BODY_CHARS = 500
ANSWERED = "{host} answered {status}: {body}"


class DeliveryError(Exception):
    """A send that failed. `permanent`: trying again cannot help (most 4xx, a refused destination)."""

    def __init__(
        self, message: str, *, permanent: bool, retry_after: float | None = None, response_code: int | None = None
    ):
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.retry_after = retry_after
        self.response_code = response_code


@dataclass
class Message:
    """What a channel sends: plain data, read from the delivery."""

    delivery_id: str
    workspace_id: str
    idempotency_key: str
    subject: str
    body: str
    link: str = ""
    level: str = "info"
    payload: dict = field(default_factory=dict)
    recipient_id: Any = None
    recipient_email: str = ""

    def format(self, name: str) -> Any:
        """The message's rendered body in a channel's own format (a template's `formats`), or None."""
        return (self.payload.get("formats") or {}).get(name)

    @property
    def markdown(self) -> str:
        """The body for channels that show Markdown (Slack's mrkdwn, Teams, Discord): the template's
        `markdown` format when it has one, else the plain body."""
        markdown = self.format("markdown")
        return markdown if isinstance(markdown, str) else self.body


@dataclass
class Sent:
    response_code: int | None = None
    provider_id: str = ""


def classified(response: EgressResponse) -> Sent:
    """A 2xx answer as Sent; 429, 408 and 5xx as transient errors; any other answer as permanent."""
    if 200 <= response.status < 300:
        return Sent(response_code=response.status)
    excerpt = response.body[:MAX_ERROR_BODY_CHARS].decode(errors="replace")
    transient = response.status in (408, 425, 429) or response.status >= 500
    raise DeliveryError(
        ANSWERED.format(host=urlsplit(response.url).hostname, status=response.status, body=excerpt),
        permanent=not transient,
        retry_after=retry_after_seconds(response.headers.get("retry-after")),
        response_code=response.status,
    )


def post(url: str, *, content: bytes, headers: dict[str, str], secret_headers: tuple[str, ...] = ()) -> EgressResponse:
    """POST through the guarded egress client (SSRF rules); its failures become DeliveryErrors."""
    try:
        return request(
            "POST",
            url,
            content=content,
            headers={"Content-Type": "application/json", **headers},
            timeout=settings.DWC_NOTIFICATIONS_TIMEOUT_SECONDS,
            max_response_bytes=64 * 1024,
            secret_headers=secret_headers,
        )
    except StepError as error:
        # The egress client's own types say which: a refused address is permanent, a timeout is not.
        raise DeliveryError(error.message, permanent=not error.retryable) from error


# The config of a kind that reaches the workspace's members (in-app, web push) when a delivery names
# nobody: which of them, by role (members_reached).
MEMBERS_CONFIG_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "roles": {
            "description": "Members with these roles are notified (all members when absent).",
            "type": "array",
            "items": {"enum": list(Membership.Role.values)},
            "uniqueItems": True,
            "minItems": 1,
        }
    },
}


def members_reached(message: Message, config: dict, kind: str) -> QuerySet:
    """The ids (`user_id`) of the workspace's members holding one of `config`'s roles (all members when
    it names none), less those whose preferences mute the message's event type or this kind."""
    members = Membership.objects.filter(workspace_id=message.workspace_id)
    if "roles" in config:
        members = members.filter(role__in=config["roles"])
    muting = Q(muted_kinds__contains=[kind])
    if event_type := message.payload.get("type"):
        muting |= Q(muted_events__contains=[event_type])
    return members.exclude(user_id__in=Preference.objects.filter(muting).values("user_id")).values("user_id")


class ChannelKind:
    name: ClassVar[str]
    description: ClassVar[str]
    # JSON Schema (draft 2020-12) for `Channel.config`.
    config_schema: ClassVar[dict] = {"type": "object", "additionalProperties": False, "properties": {}}
    # Credential kinds `Channel.credential` may name; empty: the kind takes none.
    credential_kinds: ClassVar[tuple[str, ...]] = ()
    # Whether the receiver drops a repeated message carrying the same key: then a send cut off by a
    # crash may be sent again; otherwise it is recorded as "may have been delivered".
    accepts_idempotency_key: ClassVar[bool] = False

    @classmethod
    def validate(cls, config: Any, *, credential: str) -> Errors:
        """Errors keyed `config.<path>` or `credential`; {} when the pair is valid."""
        if not isinstance(config, dict):
            return {"config": ["Must be a JSON object."]}
        errors: Errors = {}
        for error in sorted(Draft202012Validator(cls.config_schema).iter_errors(config), key=str):
            path = ".".join(["config", *(str(part) for part in error.absolute_path)])
            errors.setdefault(path, []).append(error.message)
        if credential and not cls.credential_kinds:
            errors["credential"] = [f"A {cls.name} channel takes no credential."]
        return errors

    @classmethod
    def send(cls, config: dict, secret: dict | None, message: Message) -> Sent:
        """Send the message; raise DeliveryError on failure. `secret`: the credential's value, if any."""
        raise NotImplementedError(f"{cls.__name__} must define send()")


URL_SCHEMA = {
    "description": "The destination URL (http or https).",
    "type": "string",
    "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[^\\s/?#@]+([/?#]\\S*)?$",
    "maxLength": 2048,
}

URL_OR_CREDENTIAL = "Give the webhook URL in config.url or name a slack_webhook credential holding it."


class ChatWebhookKind(ChannelKind):
    """A chat service's incoming webhook: the URL (itself a secret) in `config.url` or in a credential."""

    config_schema: ClassVar[dict] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"url": URL_SCHEMA},
    }
    credential_kinds = ("slack_webhook",)

    @classmethod
    def validate(cls, config: Any, *, credential: str) -> Errors:
        errors = super().validate(config, credential=credential)
        if not errors and not config.get("url") and not credential:
            errors["config.url"] = [URL_OR_CREDENTIAL]
        return errors

    @classmethod
    def url(cls, config: dict, secret: dict | None) -> str:
        return config.get("url") or (secret or {})["url"]

    @classmethod
    def body(cls, message: Message) -> dict:
        raise NotImplementedError

    @classmethod
    def sent(cls, response: EgressResponse) -> Sent:
        """What the service's answer says was sent (a kind whose answer names the message reads it here)."""
        return classified(response)

    @classmethod
    def send(cls, config: dict, secret: dict | None, message: Message) -> Sent:
        url = cls.url(config, secret)
        content = json.dumps(cls.body(message), separators=(",", ":"), ensure_ascii=False).encode()
        return cls.sent(post(url, content=content, headers={}))
