"""Credential values: encrypted with Fernet keys from CREDENTIALS_KEY, read only where they are used.

CREDENTIALS_KEY holds one or more comma-separated keys: the first encrypts, every one decrypts, so a
key is rotated by putting the new one first and running `credentials_rotate` (the
`rotate_credentials_key` command), which re-encrypts what an older key encrypted.

Values are write-only: besides the low-level `decrypt`, only `credential_value` and
`credential_kind_and_value` return one, for node types at send time. The API and the admin show
which keys a value has (`credential_fields`), never the value. Admins and owners of a workspace
manage its credentials; every member may see their names and kinds.
"""

import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.db.models import Q, QuerySet
from django.http import Http404

from accounts.access import Role, ensure_role, workspaces_for_user
from accounts.models import User, Workspace
from audit.services import REDACTED, AnyRequest, audit_record, diff
from core.problems import Conflict
from workflows.engine.errors import PermanentError
from workflows.models import Credential, Node, WebhookTrigger, Workflow

logger = logging.getLogger(__name__)

Errors = dict[str, list[str]]

# The keys each kind's value must have; values are strings.
VALUE_KEYS = {
    Credential.Kind.HTTP_BEARER: {"token"},
    Credential.Kind.HTTP_BASIC: {"username", "password"},
    Credential.Kind.HTTP_HEADER: {"name", "value"},
    Credential.Kind.HMAC_SECRET: {"secret"},
    Credential.Kind.SLACK_WEBHOOK: {"url"},
    Credential.Kind.OPENAI: {"api_key"},
    Credential.Kind.ANTHROPIC: {"api_key"},
    Credential.Kind.SMTP: {"host", "username", "password"},
}
OPTIONAL_KEYS = {Credential.Kind.OPENAI: {"base_url", "organization"}, Credential.Kind.ANTHROPIC: {"base_url"}}
# Value keys holding a URL a provider client is pointed at.
URL_KEYS = {"base_url"}

# Where each node type names a credential in its config. Deleting a credential checks these.
REFERENCES = {"document": "credential", "http_request": "credential", "notify": "credential", "webhook": "secret"}

WRITABLE_FIELDS = ("name", "kind", "value")
# Read-only fields a client may send back from a GET; they are not part of what it changes.
IGNORED_FIELDS = ("id", "workspace", "fields", "created_by", "created_at", "updated_at")
NAME_MAX_LENGTH = Credential._meta.get_field("name").max_length
# How many referencing workflows a refused delete names.
REFERENCES_LISTED = 20

MISSING_CREDENTIAL = "No credential named {name!r} in this workspace."
WRONG_KIND = "Credential {name!r} is a {kind} credential; this needs one of: {kinds}."
UNREADABLE = "Credential {name!r} cannot be decrypted with the configured CREDENTIALS_KEY."
NO_SUCH_CREDENTIAL = "No such credential."
BODY_NOT_AN_OBJECT = "The body must be a JSON object."
UNKNOWN_FIELD = "Unknown field."
REQUIRED = "This field is required."
NAME_INVALID = f"A name of 1 to {NAME_MAX_LENGTH} characters, not only spaces."
NAME_TAKEN = "A credential with this name exists."
KIND_INVALID = "Must be one of: {kinds}."
KIND_NEEDS_VALUE = "A credential that changes its kind needs a new value for it."
VALUE_NOT_AN_OBJECT = "The value must be a JSON object of strings."
VALUE_NOT_A_STRING = "Must be a string."
VALUE_KEY_MISSING = "A {kind} credential needs this key."
VALUE_KEY_UNKNOWN = "Not a key of a {kind} credential (its keys: {keys})."
URL_INVALID = "Must be an http:// or https:// URL with a host."
URL_WITH_USERINFO = "Must not carry a user name or password; put secrets in api_key."
IN_USE = (
    "Credential {name!r} is used by {count} workflow(s): {workflows}. Their runs would fail at those nodes; "
    "delete with ?force=true to delete it anyway."
)


def _keys() -> list[str]:
    return [key.strip() for key in settings.CREDENTIALS_KEY.split(",") if key.strip()]


def _fernet() -> MultiFernet:
    return MultiFernet([Fernet(key) for key in _keys()])


def encrypt(value: dict) -> bytes:
    return _fernet().encrypt(json.dumps(value).encode())


def decrypt(token: bytes) -> dict:
    return json.loads(_fernet().decrypt(bytes(token)))


# --- validation ----------------------------------------------------------------------------------------


def _url_error(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        return URL_INVALID
    if parts.scheme not in ("http", "https") or not parts.hostname or any(char.isspace() for char in url):
        return URL_INVALID
    if parts.username is not None or parts.password is not None:
        return URL_WITH_USERINFO
    return None


def value_field_errors(kind: str, value: object) -> Errors:
    """What is wrong with a value for `kind`, keyed by path (`value`, `value.<key>`); {} when it is valid.

    Messages name keys, never the strings a value holds: they end up in responses and logs.
    """
    if not isinstance(value, dict):
        return {"value": [VALUE_NOT_AN_OBJECT]}
    required, optional = VALUE_KEYS[kind], OPTIONAL_KEYS.get(kind, set())
    errors: Errors = {}
    for key in sorted(required - set(value)):
        errors[f"value.{key}"] = [VALUE_KEY_MISSING.format(kind=kind)]
    for key in sorted(set(value) - required - optional):
        errors[f"value.{key}"] = [VALUE_KEY_UNKNOWN.format(kind=kind, keys=", ".join(sorted(required | optional)))]
    for key in sorted(set(value) & (required | optional)):
        if not isinstance(value[key], str):
            errors[f"value.{key}"] = [VALUE_NOT_A_STRING]
        elif key in URL_KEYS and (problem := _url_error(value[key])):
            errors[f"value.{key}"] = [problem]
    return errors


def value_errors(kind: str, value: object) -> list[str]:
    """The same checks as `value_field_errors`, as sentences for a form with one field for the value."""
    if not isinstance(value, dict) or not all(isinstance(item, str) for item in value.values()):
        return [VALUE_NOT_AN_OBJECT]
    required, optional = VALUE_KEYS[kind], OPTIONAL_KEYS.get(kind, set())
    problems = []
    if missing := required - set(value):
        problems.append(f"Missing: {', '.join(sorted(missing))}.")
    if unknown := set(value) - required - optional:
        problems.append(f"Unknown: {', '.join(sorted(unknown))}.")
    for key in sorted(set(value) & URL_KEYS & optional):
        if problem := _url_error(value[key]):
            problems.append(f"{key}: {problem}")
    return problems


def _name_errors(name: object) -> Errors:
    if not isinstance(name, str) or not name.strip() or len(name) > NAME_MAX_LENGTH:
        return {"name": [NAME_INVALID]}
    return {}


def _kind_errors(kind: object) -> Errors:
    if not isinstance(kind, str) or kind not in VALUE_KEYS:
        return {"kind": [KIND_INVALID.format(kinds=", ".join(VALUE_KEYS))]}
    return {}


def _parse_body(data: Any, *, credential: Credential | None) -> dict:
    """The fields a POST (credential None) or PATCH body sets, checked; ValidationError names the bad ones."""
    if not isinstance(data, dict):
        raise ValidationError({"non_field_errors": [BODY_NOT_AN_OBJECT]})
    errors: Errors = {name: [UNKNOWN_FIELD] for name in sorted(set(data) - {*WRITABLE_FIELDS, *IGNORED_FIELDS})}
    fields = {name: data[name] for name in WRITABLE_FIELDS if name in data}
    if credential is None:
        errors.update({name: [REQUIRED] for name in WRITABLE_FIELDS if name not in fields})
    if "name" in fields:
        errors.update(_name_errors(fields["name"]))
    if "kind" in fields:
        errors.update(_kind_errors(fields["kind"]))
    kind = fields.get("kind", credential.kind if credential else None)
    if credential is not None and kind != credential.kind and "value" not in fields and not _kind_errors(kind):
        errors["value"] = [KIND_NEEDS_VALUE]
    if "value" in fields and not _kind_errors(kind):
        errors.update(value_field_errors(kind, fields["value"]))
    if errors:
        raise ValidationError(errors)
    return fields


# --- reads ---------------------------------------------------------------------------------------------


def credentials_for_user(user: User) -> QuerySet[Credential]:
    """Credentials of every workspace `user` is a member of, whatever the role (values stay encrypted)."""
    return Credential.objects.filter(workspace__in=workspaces_for_user(user)).select_related("created_by")


def credential_get(user: User, credential_id: Any) -> Credential:
    """The credential if `user` is a member of its workspace; Http404 hides the rest."""
    try:
        credential = Credential.objects.select_related("workspace", "created_by").get(pk=credential_id)
    except (ValueError, ValidationError, Credential.DoesNotExist) as error:
        raise Http404(NO_SUCH_CREDENTIAL) from error
    ensure_role(user, credential.workspace, Role.VIEWER, not_found=NO_SUCH_CREDENTIAL)
    return credential


def credential_fields(credential: Credential) -> list[str] | None:
    """The names of the keys its value sets (never the value); None when no configured key decrypts it."""
    try:
        return sorted(decrypt(credential.encrypted_value))
    except InvalidToken:
        return None


def credential_references(credential: Credential) -> QuerySet[Workflow]:
    """Workflows of its workspace, not deleted, with a node whose config names this credential."""
    named = Q()
    for node_type, key in REFERENCES.items():
        named |= Q(type=node_type, **{f"config__{key}": credential.name})
    nodes = Node.objects.filter(named, workflow__workspace_id=credential.workspace_id)
    return Workflow.objects.filter(pk__in=nodes.values("workflow_id"), deleted_at__isnull=True).order_by("name")


def credential_kind_and_value(*, workspace_id, name: str, kinds: tuple[str, ...]) -> tuple[str, dict]:
    """The kind and decrypted value for a node at run time; PermanentError when missing or of another kind."""
    credential = Credential.objects.filter(workspace_id=workspace_id, name=name).first()
    if credential is None:
        raise PermanentError(MISSING_CREDENTIAL.format(name=name))
    if credential.kind not in kinds:
        raise PermanentError(WRONG_KIND.format(name=name, kind=credential.kind, kinds=", ".join(kinds)))
    try:
        return credential.kind, decrypt(credential.encrypted_value)
    except InvalidToken as error:
        raise PermanentError(UNREADABLE.format(name=name)) from error


def credential_value(*, workspace_id, name: str, kinds: tuple[str, ...]) -> dict:
    """The decrypted value for a node at run time; PermanentError when missing or of another kind."""
    return credential_kind_and_value(workspace_id=workspace_id, name=name, kinds=kinds)[1]


# --- writes --------------------------------------------------------------------------------------------


def _stored(credential: Credential, *, update_fields: list[str] | None = None) -> Credential:
    """Save, turning the unique-name constraint into a 400 on `name` (also when a concurrent write won)."""
    try:
        with transaction.atomic():
            credential.save(update_fields=update_fields)
    except IntegrityError as error:
        raise ValidationError({"name": [NAME_TAKEN]}) from error
    return credential


def credential_save(*, workspace_id, name: str, kind: str, value: dict, actor: User | None = None) -> Credential:
    """Create or replace a credential's value by name, without a permission check.

    For code that provisions credentials (fixtures, scripts); requests go through credential_create
    and credential_update, which check the caller's role.
    """
    errors = {**_name_errors(name), **_kind_errors(kind)}
    if errors:
        raise ValidationError(errors)
    if errors := value_field_errors(kind, value):
        raise ValidationError(errors)
    try:
        with transaction.atomic():
            credential, created = Credential.objects.update_or_create(
                workspace_id=workspace_id,
                name=name,
                defaults={"kind": kind, "encrypted_value": encrypt(value), "created_by": actor},
            )
            audit_record(
                action="credential.created" if created else "credential.updated",
                actor=actor,
                workspace=workspace_id,
                target=credential,
                changes=(
                    {"name": [None, name], "kind": [None, kind], "value": [None, REDACTED]}
                    if created
                    else {"value": [REDACTED, REDACTED]}
                ),
            )
    except IntegrityError as error:
        raise ValidationError({"name": [NAME_TAKEN]}) from error
    return credential


def credential_create(*, actor: User, workspace: Workspace, data: Any, request: AnyRequest | None = None) -> Credential:
    """A new credential from `{name, kind, value}`; admins and owners only.

    Raises Http404 for non-members, PermissionDenied for other roles, ValidationError (nothing written)
    for a bad body or a name the workspace already uses.
    """
    ensure_role(actor, workspace, Role.ADMIN)
    fields = _parse_body(data, credential=None)
    with transaction.atomic():
        credential = _stored(
            Credential(
                workspace=workspace,
                name=fields["name"],
                kind=fields["kind"],
                encrypted_value=encrypt(fields["value"]),
                created_by=actor,
            )
        )
        audit_record(
            action="credential.created",
            actor=actor,
            workspace=workspace,
            target=credential,
            # The value is never recorded, only that one was set.
            changes={"name": [None, credential.name], "kind": [None, credential.kind], "value": [None, REDACTED]},
            request=request,
        )
    logger.info("credential created", extra=_log_fields(credential, actor))
    return credential


def credential_update(
    *, credential: Credential, actor: User, data: Any, request: AnyRequest | None = None
) -> Credential:
    """Rename it and/or replace its whole value (PATCH); a new kind needs a new value. Admins and owners only.

    Renaming does not follow into node configs, which name credentials: nodes naming the old name fail.
    """
    ensure_role(actor, credential.workspace, Role.ADMIN)
    fields = _parse_body(data, credential=credential)
    with transaction.atomic():
        # of=self: created_by is a nullable join, which PostgreSQL will not lock.
        rows = Credential.objects.select_for_update(of=("self",)).select_related("workspace", "created_by")
        credential = rows.get(pk=credential.pk)
        before = {"name": credential.name, "kind": credential.kind}
        changed = [name for name in ("name", "kind") if name in fields]
        for name in changed:
            setattr(credential, name, fields[name])
        if "value" in fields:
            credential.encrypted_value = encrypt(fields["value"])
            changed.append("encrypted_value")
        if changed:
            _stored(credential, update_fields=[*changed, "updated_at"])
            changes = diff(before, {"name": credential.name, "kind": credential.kind})
            if "value" in fields:  # replaced: whether it is equal to the old one is not ours to find out
                changes["value"] = [REDACTED, REDACTED]
            audit_record(
                action="credential.updated",
                actor=actor,
                workspace=credential.workspace,
                target=credential,
                changes=changes,
                request=request,
            )
    logger.info("credential updated", extra={**_log_fields(credential, actor), "changed": sorted(fields)})
    return credential


def credential_delete(
    *, credential: Credential, actor: User, force: bool = False, request: AnyRequest | None = None
) -> None:
    """Delete it; admins and owners only. Conflict (409) while a workflow's node names it, unless `force`."""
    ensure_role(actor, credential.workspace, Role.ADMIN)
    with transaction.atomic():
        credential = Credential.objects.select_for_update().get(pk=credential.pk)
        users = list(credential_references(credential).values_list("pk", "name")[: REFERENCES_LISTED + 1])
        if users and not force:
            listed = ", ".join(f"{name!r} ({pk})" for pk, name in users[:REFERENCES_LISTED])
            more = " and more" if len(users) > REFERENCES_LISTED else ""
            raise Conflict(IN_USE.format(name=credential.name, count=len(users), workflows=listed + more))
        log_fields = _log_fields(credential, actor)
        credential_id, before = credential.pk, {"name": credential.name, "kind": credential.kind}
        credential.delete()
        audit_record(
            action="credential.deleted",
            actor=actor,
            workspace=credential.workspace_id,
            target_type="credential",
            target_id=credential_id,
            changes={**diff(before, {}), "value": [REDACTED, None], **({"forced": [None, True]} if users else {})},
            request=request,
        )
    logger.info("credential deleted", extra={**log_fields, "forced": bool(users)})


def _log_fields(credential: Credential, actor: User) -> dict:
    return {
        "credential": str(credential.pk),
        "credential_name": credential.name,
        "kind": credential.kind,
        "workspace": str(credential.workspace_id),
        "actor": str(actor.pk),
    }


# --- key rotation --------------------------------------------------------------------------------------


@dataclass
class Rotation:
    """What `credentials_rotate` did (or, in a dry run, would do), per kind of secret."""

    rotated: Counter = field(default_factory=Counter)
    current: Counter = field(default_factory=Counter)
    unreadable: list[str] = field(default_factory=list)


# Every column CREDENTIALS_KEY encrypts: model, field, label for counts, how to name a row in an error.
ENCRYPTED_COLUMNS: list[tuple[type[models.Model], str, str, Callable[[Any], str]]] = [
    (Credential, "encrypted_value", "credentials", lambda row: f"credential {row.pk} {row.name!r}"),
    (WebhookTrigger, "encrypted_secret", "webhook secrets", lambda row: f"webhook {row.pk}"),
]


def credentials_rotate(*, batch_size: int = 500, dry_run: bool = False) -> Rotation:
    """Re-encrypt every stored secret that an older key encrypted with the first key of CREDENTIALS_KEY.

    Works in batches, one transaction each, with the batch's rows locked. A secret no configured key
    decrypts is left as it is and named in `unreadable` (by id and name); the others are still rotated,
    so running it again after fixing the keys finishes the job. Rows already on the first key are
    counted in `current` and not rewritten, and `updated_at` is not touched.
    """
    multi, primary = _fernet(), Fernet(_keys()[0])
    result = Rotation()
    for model, column, label, describe in ENCRYPTED_COLUMNS:
        rows = model.objects.filter(**{f"{column}__isnull": False}).order_by("pk")
        rows = rows.only("pk", column, *(["name"] if model is Credential else []))
        last_pk = None
        while True:
            with transaction.atomic():
                page = rows if last_pk is None else rows.filter(pk__gt=last_pk)
                batch = list(page.select_for_update()[:batch_size])
                if not batch:
                    break
                last_pk = batch[-1].pk
                changed = []
                for row in batch:
                    token = bytes(getattr(row, column))
                    try:
                        primary.decrypt(token)
                        result.current[label] += 1
                        continue
                    except InvalidToken:
                        pass
                    try:
                        setattr(row, column, multi.rotate(token))
                    except InvalidToken:
                        result.unreadable.append(describe(row))
                        continue
                    result.rotated[label] += 1
                    changed.append(row)
                if changed and not dry_run:
                    model.objects.bulk_update(changed, [column])
    return result
