"""Changes to notification rules: create, update, delete (editors, admins and owners; audited).

A rule's body: `{name, enabled, events, workflow, tags, channels, members, roles, member_kinds,
template, throttle_count, throttle_window_seconds, digest_window_seconds}`. Channels, members and the
template are given by id and must belong to the rule's workspace (members: be members of it now).
"""

import uuid
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.access import Role, ensure_role
from accounts.models import Membership, User, Workspace
from audit.services import AnyRequest, audit_record, diff
from notifications.models import Channel, Rule, Template
from notifications.services.bodies import NOT_A_BOOLEAN, Errors, body_fields
from notifications.services.events import EVENT_TYPES

SCALAR_FIELDS = (
    "name",
    "enabled",
    "events",
    "workflow",
    "tags",
    "roles",
    "member_kinds",
    "template",
    "throttle_count",
    "throttle_window_seconds",
    "digest_window_seconds",
)
WRITABLE_FIELDS = (*SCALAR_FIELDS, "channels", "members")
IGNORED_FIELDS = ("id", "workspace", "created_by", "created_at", "updated_at")
NAME_MAX_LENGTH = Rule._meta.get_field("name").max_length
MEMBER_KINDS = (Channel.Kind.IN_APP, Channel.Kind.EMAIL, Channel.Kind.WEB_PUSH)
MAX_WINDOW_SECONDS = 7 * 24 * 3600
MAX_LIST = 100
INTEGER_FIELDS = ("throttle_count", "throttle_window_seconds", "digest_window_seconds")

NAME_INVALID = f"A name of 1 to {NAME_MAX_LENGTH} characters, not only spaces."
NAME_TAKEN = "A rule with this name exists."
CHOICES_INVALID = "A list of distinct values among: {choices}."
EVENTS_EMPTY = "Name at least one event type."
TAGS_INVALID = f"A list of at most {MAX_LIST} tags (text of 1 to 100 characters)."
IDS_INVALID = f"A list of at most {MAX_LIST} ids."
UUID_INVALID = "Must be an id (a UUID) or null."
NOT_IN_WORKSPACE = "Not a {what} of this workspace: {ids}."
NOBODY = "Name at least one recipient: channels, members or roles."
KINDS_EMPTY = "Members and roles are notified by at least one kind: in_app, email or web_push."
INTEGER_INVALID = "A whole number from {low} to {high}."
DIGEST_INVALID = f"0 (no digest) or from 60 to {MAX_WINDOW_SECONDS} seconds."


def _distinct_choices(value: Any, choices: tuple[str, ...]) -> bool:
    return (
        isinstance(value, list)
        and len(value) == len(set(map(str, value)))
        and all(isinstance(item, str) and item in choices for item in value)
    )


def _ids(value: Any) -> list[uuid.UUID] | None:
    if not isinstance(value, list) or len(value) > MAX_LIST:
        return None
    try:
        return list(dict.fromkeys(uuid.UUID(str(item)) for item in value if isinstance(item, str)))
    except ValueError:
        return None


def _integer(value: Any, low: int, high: int) -> bool:
    """A whole number in range; JSON's 60.0 counts (JSON Schema's integer is any number without a fraction)."""
    integral_float = isinstance(value, float) and value.is_integer()
    whole = (isinstance(value, int) and not isinstance(value, bool)) or integral_float
    return whole and low <= value <= high


def _check(fields: dict, errors: Errors) -> None:
    """Each field's value on its own; relations (ids) are resolved by _resolved."""
    name = fields.get("name")
    if "name" in fields and (not isinstance(name, str) or not name.strip() or len(name) > NAME_MAX_LENGTH):
        errors["name"] = [NAME_INVALID]
    if "enabled" in fields and not isinstance(fields["enabled"], bool):
        errors["enabled"] = [NOT_A_BOOLEAN]
    roles = tuple(Membership.Role.values)
    for key, choices in (("events", EVENT_TYPES), ("roles", roles), ("member_kinds", MEMBER_KINDS)):
        if key in fields and not _distinct_choices(fields[key], tuple(map(str, choices))):
            errors[key] = [CHOICES_INVALID.format(choices=", ".join(map(str, choices)))]
    if fields.get("events") == []:
        errors["events"] = [EVENTS_EMPTY]
    tags = fields.get("tags", [])
    tags_valid = isinstance(tags, list) and len(tags) <= MAX_LIST
    if not tags_valid or not all(isinstance(tag, str) and 0 < len(tag) <= 100 for tag in tags):
        errors["tags"] = [TAGS_INVALID]
    for key in ("workflow", "template"):
        if fields.get(key) is not None:
            try:
                uuid.UUID(str(fields[key]))
            except ValueError:
                errors[key] = [UUID_INVALID]
    for key in ("channels", "members"):
        if key in fields and _ids(fields[key]) is None:
            errors[key] = [IDS_INVALID]
    if "throttle_count" in fields and not _integer(fields["throttle_count"], 1, 100_000):
        errors["throttle_count"] = [INTEGER_INVALID.format(low=1, high=100_000)]
    if "throttle_window_seconds" in fields and not _integer(fields["throttle_window_seconds"], 1, MAX_WINDOW_SECONDS):
        errors["throttle_window_seconds"] = [INTEGER_INVALID.format(low=1, high=MAX_WINDOW_SECONDS)]
    digest = fields.get("digest_window_seconds", 0)
    if not _integer(digest, 0, MAX_WINDOW_SECONDS) or 0 < digest < 60:
        errors["digest_window_seconds"] = [DIGEST_INVALID]


def _resolved(workspace: Workspace, fields: dict, errors: Errors) -> dict:
    """The relations the body names, looked up in the workspace: {template, channels, members}."""
    found: dict[str, Any] = {}
    if "template" in fields and "template" not in errors:
        template = None
        if fields["template"] is not None:
            template = Template.objects.filter(workspace=workspace, pk=fields["template"]).first()
            if template is None:
                errors["template"] = [NOT_IN_WORKSPACE.format(what="template", ids=fields["template"])]
        found["template"] = template
    for key, what, rows in (
        ("channels", "channel", Channel.objects.filter(workspace=workspace)),
        ("members", "member", User.objects.filter(memberships__workspace=workspace)),
    ):
        if key in fields and key not in errors:
            ids = _ids(fields[key])
            objects = list(rows.filter(pk__in=ids))
            missing = sorted(set(map(str, ids)) - {str(row.pk) for row in objects})
            if missing:
                errors[key] = [NOT_IN_WORKSPACE.format(what=what, ids=", ".join(missing))]
            found[key] = objects
    return found


def _snapshot(rule: Rule) -> dict:
    snapshot = {name: getattr(rule, name) for name in SCALAR_FIELDS if name not in ("workflow", "template")}
    snapshot["workflow"] = rule.workflow_id
    snapshot["template"] = rule.template_id
    if rule.pk:
        snapshot["channels"] = sorted(str(pk) for pk in rule.channels.values_list("pk", flat=True))
        snapshot["members"] = sorted(str(pk) for pk in rule.members.values_list("pk", flat=True))
    return snapshot


def _applied(rule: Rule, workspace: Workspace, data: Any, *, creating: bool) -> tuple[Rule, dict]:
    """The rule with the body's fields set (not saved) and its related objects; ValidationError names
    every bad field."""
    fields, errors = body_fields(
        data, writable=WRITABLE_FIELDS, ignored=IGNORED_FIELDS, required=("name", "events") if creating else ()
    )
    _check(fields, errors)
    related = _resolved(workspace, fields, errors)
    for name in SCALAR_FIELDS:
        if name in fields and name not in errors:
            if name == "workflow":
                rule.workflow_id = fields[name]
            elif name == "template":
                rule.template = related["template"]
            elif name in INTEGER_FIELDS:
                setattr(rule, name, int(fields[name]))
            else:
                setattr(rule, name, fields[name])
    if fields.get("member_kinds") == []:
        errors["member_kinds"] = [KINDS_EMPTY]
    if not errors:
        has_channels = related["channels"] if "channels" in related else (not creating and rule.channels.exists())
        has_members = related["members"] if "members" in related else (not creating and rule.members.exists())
        if not (has_channels or has_members or rule.roles):
            errors["channels"] = [NOBODY]
    if errors:
        raise ValidationError(errors)
    return rule, related


def rule_check(workspace: Workspace, data: Any, *, rule: Rule | None = None) -> None:
    """Check a body as rule_create (rule None) or rule_update would, changing nothing: ValidationError
    naming the bad fields. For forms that validate first."""
    _applied(rule or Rule(workspace=workspace), workspace, data, creating=rule is None)


def _saved(rule: Rule, related: dict) -> Rule:
    try:
        with transaction.atomic():
            rule.save()
    except IntegrityError as error:
        raise ValidationError({"name": [NAME_TAKEN]}) from error
    if "channels" in related:
        rule.channels.set(related["channels"])
    if "members" in related:
        rule.members.set(related["members"])
    return rule


def rule_create(*, actor: User, workspace: Workspace, data: Any, request: AnyRequest | None = None) -> Rule:
    """A new rule; editors, admins and owners. ValidationError names each bad field."""
    ensure_role(actor, workspace, Role.EDITOR)
    with transaction.atomic():
        rule, related = _applied(Rule(workspace=workspace, created_by=actor), workspace, data, creating=True)
        rule = _saved(rule, related)
        audit_record(
            action="notification_rule.created",
            actor=actor,
            workspace=workspace,
            target=rule,
            changes=diff({}, _snapshot(rule)),
            request=request,
        )
    return rule


def rule_update(*, rule: Rule, actor: User, data: Any, request: AnyRequest | None = None) -> Rule:
    """Change a rule (PATCH semantics: the fields the body names); editors, admins and owners."""
    ensure_role(actor, rule.workspace, Role.EDITOR)
    with transaction.atomic():
        rule = Rule.objects.select_for_update(of=("self",)).select_related("workspace", "template").get(pk=rule.pk)
        before = _snapshot(rule)
        rule, related = _applied(rule, rule.workspace, data, creating=False)
        rule = _saved(rule, related)
        if changes := diff(before, _snapshot(rule)):
            audit_record(
                action="notification_rule.updated",
                actor=actor,
                workspace=rule.workspace,
                target=rule,
                changes=changes,
                request=request,
            )
    return rule


def rule_delete(*, rule: Rule, actor: User, request: AnyRequest | None = None) -> None:
    """Delete a rule; its deliveries stay as history. Editors, admins and owners."""
    ensure_role(actor, rule.workspace, Role.EDITOR)
    with transaction.atomic():
        audit_record(
            action="notification_rule.deleted",
            actor=actor,
            workspace=rule.workspace,
            target=rule,
            changes=diff(_snapshot(rule), {}),
            request=request,
        )
        rule.delete()
