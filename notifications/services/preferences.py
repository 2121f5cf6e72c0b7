"""Each user's notification preferences: event types and channel kinds muted, quiet hours in their
time zone. Everyone has them: they are made, all defaults, on first read or write. Changes are audited."""

import re
import uuid
from collections.abc import Callable
from datetime import time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import User
from audit.services import AnyRequest, audit_record, diff
from notifications.models import Channel, Preference
from notifications.services.events import EVENT_TYPES
from notifications.unsubscribe import BadToken, unsubscribe_token_read

Errors = dict[str, list[str]]

FIELDS = ("muted_events", "muted_kinds", "quiet_hours", "timezone")
# What a GET shows besides the fields; a PUT may send them back and they are ignored.
IGNORED_FIELDS = ("event_types", "kinds")
KINDS = tuple(Channel.Kind.values)
TIMEZONE_MAX_LENGTH = Preference._meta.get_field("timezone").max_length
CLOCK = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")

BODY_NOT_AN_OBJECT = "The body must be a JSON object."
UNKNOWN_FIELD = "Unknown field."
REQUIRED = "This field is required."
NOT_A_LIST = "Must be a list of strings."
UNKNOWN_EVENT_TYPE = "Unknown event type {value!r}; expected some of: {choices}."
UNKNOWN_KIND = "Unknown channel kind {value!r}; expected some of: {choices}."
QUIET_HOURS_SHAPE = 'Must be null or an object {"start": "HH:MM", "end": "HH:MM"}.'
NOT_A_CLOCK_TIME = 'Must be a time of day "HH:MM" (00:00 to 23:59).'
QUIET_HOURS_EMPTY = "The quiet hours must start and end at different times."
TIMEZONE_UNKNOWN = "Unknown time zone {value!r}: give an IANA name such as Europe/Berlin or UTC."


def preference_get(*, user: User) -> Preference:
    """The user's preferences, made with the defaults (nothing muted, no quiet hours, UTC) if they had none."""
    preference, _ = Preference.objects.get_or_create(user=user)
    return preference


def _names(value: Any, choices: tuple[str, ...], message: str) -> tuple[list[str], list[str]]:
    """(the names without repeats, errors) of a list of names that must be among `choices`."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        return [], [NOT_A_LIST]
    errors = [
        message.format(value=item, choices=", ".join(choices)) for item in dict.fromkeys(value) if item not in choices
    ]
    return list(dict.fromkeys(value)), errors


def _clock(value: Any) -> time | None:
    match = CLOCK.match(value) if isinstance(value, str) else None
    return time(int(match[1]), int(match[2])) if match else None


def _timezone_ok(value: Any) -> bool:
    if not isinstance(value, str) or not value or len(value) > TIMEZONE_MAX_LENGTH:
        return False
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def preference_fields(data: Any) -> dict:
    """The model fields a PUT body sets, checked; ValidationError naming each bad field
    (`quiet_hours.start`, …)."""
    if not isinstance(data, dict):
        raise ValidationError({"non_field_errors": [BODY_NOT_AN_OBJECT]})
    errors: Errors = {name: [UNKNOWN_FIELD] for name in sorted(set(data) - {*FIELDS, *IGNORED_FIELDS})}
    errors.update({name: [REQUIRED] for name in FIELDS if name not in data})
    fields: dict[str, Any] = {}
    if "muted_events" in data:
        fields["muted_events"], errors["muted_events"] = _names(data["muted_events"], EVENT_TYPES, UNKNOWN_EVENT_TYPE)
    if "muted_kinds" in data:
        fields["muted_kinds"], errors["muted_kinds"] = _names(data["muted_kinds"], KINDS, UNKNOWN_KIND)
    if "quiet_hours" in data:
        quiet = data["quiet_hours"]
        if quiet is None:
            fields["quiet_hours_start"] = fields["quiet_hours_end"] = None
        elif not isinstance(quiet, dict) or set(quiet) != {"start", "end"}:
            errors["quiet_hours"] = [QUIET_HOURS_SHAPE]
        else:
            start, end = _clock(quiet["start"]), _clock(quiet["end"])
            if start is None:
                errors["quiet_hours.start"] = [NOT_A_CLOCK_TIME]
            if end is None:
                errors["quiet_hours.end"] = [NOT_A_CLOCK_TIME]
            if start is not None and start == end:
                errors["quiet_hours"] = [QUIET_HOURS_EMPTY]
            fields["quiet_hours_start"], fields["quiet_hours_end"] = start, end
    if "timezone" in data:
        if _timezone_ok(data["timezone"]):
            fields["timezone"] = data["timezone"]
        else:
            errors["timezone"] = [TIMEZONE_UNKNOWN.format(value=data["timezone"])]
    errors = {name: messages for name, messages in errors.items() if messages}
    if errors:
        raise ValidationError(errors)
    return fields


def _audited(preference: Preference) -> dict:
    return {
        "muted_events": list(preference.muted_events),
        "muted_kinds": list(preference.muted_kinds),
        "quiet_hours_start": preference.quiet_hours_start,
        "quiet_hours_end": preference.quiet_hours_end,
        "timezone": preference.timezone,
    }


def _save(*, user: User, change: Callable[[Preference], None], action: str, request: AnyRequest | None) -> Preference:
    """Apply `change` to the user's preferences under a row lock; save and audit if it changed anything."""
    preference_get(user=user)
    with transaction.atomic():
        preference = Preference.objects.select_for_update().get(pk=user.pk)
        before = _audited(preference)
        change(preference)
        changes = diff(before, _audited(preference))
        if changes:
            preference.save()
            audit_record(actor=user, action=action, target=preference, changes=changes, request=request)
    return preference


def preference_update(*, user: User, data: Any, request: AnyRequest | None = None) -> Preference:
    """Replace the user's preferences with a PUT body's (checked by preference_fields, which raises
    ValidationError naming the bad fields). Audited when anything changed."""
    fields = preference_fields(data)

    def change(preference: Preference) -> None:
        for name, value in fields.items():
            setattr(preference, name, value)

    return _save(user=user, change=change, action="notification_preference.updated", request=request)


def preference_mute_kind(*, user: User, kind: str, request: AnyRequest | None = None) -> Preference:
    """Mute one channel kind for the user (an email's one-click unsubscribe). Idempotent; audited when
    it changed something. The actor is the user: whoever holds their signed link acts for them."""
    if kind not in KINDS:
        raise ValueError(UNKNOWN_KIND.format(value=kind, choices=", ".join(KINDS)))

    def change(preference: Preference) -> None:
        if kind not in preference.muted_kinds:
            preference.muted_kinds = [*preference.muted_kinds, kind]

    return _save(user=user, change=change, action="notification_preference.unsubscribed", request=request)


def unsubscribe_token_subject(*, token: str) -> tuple[User, str]:
    """The user and the channel kind a signed unsubscribe token names (the page that asks them to
    confirm shows them); BadToken for a token not made here, or naming no user or kind there is."""
    user_id, kind = unsubscribe_token_read(token)
    try:
        user = User.objects.filter(pk=uuid.UUID(user_id), is_active=True).first()
    except ValueError:
        user = None
    if user is None or kind not in KINDS:
        raise BadToken("The token names no user or kind there is.")
    return user, kind


def preference_unsubscribe(*, token: str, request: AnyRequest | None = None) -> Preference:
    """Mute the kind a signed unsubscribe token names for its user (an email's one-click link);
    BadToken as unsubscribe_token_subject. Idempotent, audited when it changed something."""
    user, kind = unsubscribe_token_subject(token=token)
    return preference_mute_kind(user=user, kind=kind, request=request)
