"""Changes to credentials: create, update, delete (admins and owners, audited, values never recorded),
provisioning by name for scripts, and re-encryption under a new CREDENTIALS_KEY."""

import logging
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.fernet import InvalidToken
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.access import Role, ensure_role
from accounts.models import User, Workspace
from audit.services import REDACTED, AnyRequest, audit_record, diff
from core.problems import Conflict
from workflows.credentials import (
    VALUE_KEYS,
    Errors,
    credential_references,
    encrypt,
    key_ring,
    primary_key,
    value_field_errors,
)
from workflows.models import Credential, WebhookTrigger

logger = logging.getLogger(__name__)

WRITABLE_FIELDS = ("name", "kind", "value", "expires_at")
# Fields a new credential may leave out.
OPTIONAL_FIELDS = ("expires_at",)
# Read-only fields a client may send back from a GET; they are not part of what it changes.
IGNORED_FIELDS = ("id", "workspace", "fields", "created_by", "created_at", "updated_at")
NAME_MAX_LENGTH = Credential._meta.get_field("name").max_length
# How many referencing workflows a refused delete names.
REFERENCES_LISTED = 20

BODY_NOT_AN_OBJECT = "The body must be a JSON object."
UNKNOWN_FIELD = "Unknown field."
REQUIRED = "This field is required."
NAME_INVALID = f"A name of 1 to {NAME_MAX_LENGTH} characters, not only spaces."
NAME_TAKEN = "A credential with this name exists."
KIND_INVALID = "Must be one of: {kinds}."
KIND_NEEDS_VALUE = "A credential that changes its kind needs a new value for it."
_DATE_AND_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")
EXPIRES_AT_INVALID = "A date and time in ISO 8601 (e.g. 2027-01-31T09:00:00Z; UTC when no offset is given), or null."
IN_USE = (
    "Credential {name!r} is used by {count} workflow(s): {workflows}. Their runs would fail at those nodes; "
    "delete with ?force=true to delete it anyway."
)


def _name_errors(name: object) -> Errors:
    if not isinstance(name, str) or not name.strip() or len(name) > NAME_MAX_LENGTH:
        return {"name": [NAME_INVALID]}
    return {}


def _kind_errors(kind: object) -> Errors:
    if not isinstance(kind, str) or kind not in VALUE_KEYS:
        return {"kind": [KIND_INVALID.format(kinds=", ".join(VALUE_KEYS))]}
    return {}


def _expires_at(value: object) -> datetime | None:
    """The expiry a body sets (None: it does not expire); ValueError if it is not a date and time."""
    if value is None:
        return None
    # A date alone is not accepted: which hour of which zone it meant is a guess.
    parsed = parse_datetime(value) if isinstance(value, str) and _DATE_AND_TIME.match(value) else None
    if parsed is None:
        raise ValueError(value)
    return parsed if timezone.is_aware(parsed) else parsed.replace(tzinfo=UTC)


def _parse_body(data: Any, *, credential: Credential | None) -> dict:
    """The fields a POST (credential None) or PATCH body sets, checked; ValidationError names the bad ones."""
    if not isinstance(data, dict):
        raise ValidationError({"non_field_errors": [BODY_NOT_AN_OBJECT]})
    errors: Errors = {name: [UNKNOWN_FIELD] for name in sorted(set(data) - {*WRITABLE_FIELDS, *IGNORED_FIELDS})}
    fields = {name: data[name] for name in WRITABLE_FIELDS if name in data}
    if credential is None:
        errors.update({name: [REQUIRED] for name in WRITABLE_FIELDS if name not in {*fields, *OPTIONAL_FIELDS}})
    if "name" in fields:
        errors.update(_name_errors(fields["name"]))
    if "kind" in fields:
        errors.update(_kind_errors(fields["kind"]))
    kind = fields.get("kind", credential.kind if credential else None)
    if credential is not None and kind != credential.kind and "value" not in fields and not _kind_errors(kind):
        errors["value"] = [KIND_NEEDS_VALUE]
    if "value" in fields and not _kind_errors(kind):
        errors.update(value_field_errors(kind, fields["value"]))
    if "expires_at" in fields:
        try:
            fields["expires_at"] = _expires_at(fields["expires_at"])
        except ValueError:
            errors["expires_at"] = [EXPIRES_AT_INVALID]
    if errors:
        raise ValidationError(errors)
    return fields


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
                expires_at=fields.get("expires_at"),
                created_by=actor,
            )
        )
        audit_record(
            action="credential.created",
            actor=actor,
            workspace=workspace,
            target=credential,
            # The value is never recorded, only that one was set.
            changes={
                "name": [None, credential.name],
                "kind": [None, credential.kind],
                "value": [None, REDACTED],
                **({"expires_at": [None, _audited(credential)["expires_at"]]} if credential.expires_at else {}),
            },
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
        before = _audited(credential)
        changed = [name for name in ("name", "kind", "expires_at") if name in fields]
        for name in changed:
            setattr(credential, name, fields[name])
        if "value" in fields:
            credential.encrypted_value = encrypt(fields["value"])
            changed.append("encrypted_value")
        if changed:
            _stored(credential, update_fields=[*changed, "updated_at"])
            changes = diff(before, _audited(credential))
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


def _audited(credential: Credential) -> dict:
    """What the audit trail records of a change: never the value."""
    expires_at = credential.expires_at.astimezone(UTC).isoformat() if credential.expires_at else None
    return {"name": credential.name, "kind": credential.kind, "expires_at": expires_at}


def _log_fields(credential: Credential, actor: User) -> dict:
    return {
        "credential": str(credential.pk),
        "credential_name": credential.name,
        "kind": credential.kind,
        "workspace": str(credential.workspace_id),
        "actor": str(actor.pk),
    }


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
    multi, primary = key_ring(), primary_key()
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
