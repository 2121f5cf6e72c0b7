"""Changes to notification channels: create, update, delete (admins and owners, checked against the
kind's schema, audited)."""

from typing import Any

from django.core.exceptions import ValidationError

from accounts.access import Role, ensure_role
from accounts.models import User, Workspace
from audit.audited_changes import AuditedChanges
from audit.services import AnyRequest
from notifications.channels.registry import CHANNEL_KINDS, channel_kind_get
from notifications.models import Channel
from workflows.credentials import credential_value
from workflows.engine.errors import PermanentError

Errors = dict[str, list[str]]

WRITABLE_FIELDS = ("name", "kind", "config", "credential", "enabled")
# Read-only fields a client may send back from a GET; they are not part of what it changes.
IGNORED_FIELDS = ("id", "workspace", "last_status", "last_delivery_at", "created_by", "created_at", "updated_at")
NAME_MAX_LENGTH = Channel._meta.get_field("name").max_length
BODY_NOT_AN_OBJECT = "The body must be a JSON object."
UNKNOWN_FIELD = "Unknown field."
REQUIRED = "This field is required."
NAME_INVALID = f"A name of 1 to {NAME_MAX_LENGTH} characters, not only spaces."
NAME_TAKEN = "A channel with this name exists."
KIND_INVALID = "Must be one of: {kinds}."
NOT_A_BOOLEAN = "Must be true or false."
CREDENTIAL_INVALID = "The name of a workspace credential (at most 200 characters), or empty for none."


def _channel_fields(data: Any, *, channel: Channel | None) -> dict:
    """The fields a POST (channel None) or PATCH body sets, checked; ValidationError names the bad ones."""
    if not isinstance(data, dict):
        raise ValidationError({"non_field_errors": [BODY_NOT_AN_OBJECT]})
    errors: Errors = {name: [UNKNOWN_FIELD] for name in sorted(set(data) - {*WRITABLE_FIELDS, *IGNORED_FIELDS})}
    # A channel keeps its kind: a PATCH's `kind` is read-only, like the fields a GET gave.
    writable = WRITABLE_FIELDS if channel is None else tuple(name for name in WRITABLE_FIELDS if name != "kind")
    fields = {name: data[name] for name in writable if name in data}
    if channel is None:
        errors.update({name: [REQUIRED] for name in ("name", "kind") if name not in fields})
    name = fields.get("name")
    if "name" in fields and (not isinstance(name, str) or not name.strip() or len(name) > NAME_MAX_LENGTH):
        errors["name"] = [NAME_INVALID]
    if "kind" in fields and (not isinstance(fields["kind"], str) or fields["kind"] not in CHANNEL_KINDS):
        errors["kind"] = [KIND_INVALID.format(kinds=", ".join(CHANNEL_KINDS))]
    if "enabled" in fields and not isinstance(fields["enabled"], bool):
        errors["enabled"] = [NOT_A_BOOLEAN]
    credential = fields.get("credential", channel.credential if channel else "")
    if not isinstance(credential, str) or len(credential) > 200:
        errors["credential"] = [CREDENTIAL_INVALID]
    if "kind" not in errors and "credential" not in errors:
        kind = fields.get("kind", channel.kind if channel else None)
        if kind is not None:
            config = fields.get("config", channel.config if channel else {})
            errors.update(channel_kind_get(kind).validate(config, credential=credential))
    if errors:
        raise ValidationError(errors)
    return fields


def _credential_errors(workspace_id, kind: str, credential: str) -> Errors:
    """That the named credential exists in the workspace and is of a kind the channel takes."""
    if not credential:
        return {}
    try:
        credential_value(workspace_id=workspace_id, name=credential, kinds=channel_kind_get(kind).credential_kinds)
    except PermanentError as error:
        return {"credential": [error.message]}
    return {}


def channel_check(*, workspace_id, data: Any, channel: Channel | None = None) -> dict:
    """The fields a body sets, checked as channel_create (channel None) or channel_update would check
    them, credential included; ValidationError naming the bad ones. For forms that validate first."""
    fields = _channel_fields(data, channel=channel)
    kind = fields.get("kind", channel.kind if channel else "")
    if errors := _credential_errors(workspace_id, kind, fields.get("credential", "")):
        raise ValidationError(errors)
    return fields


def _snapshot(channel: Channel) -> dict:
    return {name: getattr(channel, name) for name in WRITABLE_FIELDS}


AUDITED = AuditedChanges("notification_channel", snapshot=_snapshot, name_taken=NAME_TAKEN)


def channel_create(*, actor: User, workspace: Workspace, data: Any, request: AnyRequest | None = None) -> Channel:
    """A new channel from `{name, kind, config, credential, enabled}`; admins and owners only.

    Raises Http404 for non-members, PermissionDenied for other roles, ValidationError for a bad body,
    a config its kind refuses, a credential that is missing or of another kind, or a name in use.
    """
    ensure_role(actor, workspace, Role.ADMIN)
    fields = channel_check(workspace_id=workspace.pk, data=data)
    return AUDITED.created(Channel(workspace=workspace, created_by=actor, **fields), actor=actor, request=request)


def channel_update(*, channel: Channel, actor: User, data: Any, request: AnyRequest | None = None) -> Channel:
    """Change a channel's name, config, credential or enabled flag (its kind stays); admins and owners only.

    The config and credential are checked together against the kind, as on creation."""
    ensure_role(actor, channel.workspace, Role.ADMIN)
    fields = channel_check(workspace_id=channel.workspace_id, data=data, channel=channel)
    return AUDITED.updated(channel, fields, actor=actor, request=request)


def channel_delete(*, channel: Channel, actor: User, request: AnyRequest | None = None) -> None:
    """Delete a channel; its deliveries stay as history (channel set to null). Admins and owners only."""
    ensure_role(actor, channel.workspace, Role.ADMIN)
    AUDITED.deleted(channel, actor=actor, request=request)
