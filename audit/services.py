"""Appending to the audit trail, and purging its old end.

Services that change state call `audit_record(...)` inside their own transaction, last, so that a
rolled-back change leaves no audit row and the chain lock (see `_append`) is held only until that
transaction commits.
"""

import ipaddress
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import cache, lru_cache
from typing import Any

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import connection, models, transaction
from django.http import HttpRequest
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.settings import api_settings

from accounts.models import Workspace
from audit.chain import GENESIS, HASHED_FIELDS, clean_text, event_hash, json_value, timestamp_text
from audit.models import AuditChainHead, AuditCheckpoint, AuditEvent
from core.request_context import request_id_var

AnyRequest = HttpRequest | Request
# What `changes` shows instead of a secret: that it was set or changed, never its value.
REDACTED = "***"
# Longer strings in `changes` (prompts, descriptions) are cut: the trail says what changed, it is not a backup.
MAX_VALUE_CHARS = 1000
ActorType = AuditEvent.ActorType


def _text(value: Any, limit: int) -> str:
    return clean_text("" if value is None else str(value))[:limit]


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
        return f"{value[:MAX_VALUE_CHARS]}… ({len(value)} characters)"
    return value


def diff(before: dict, after: dict, secret_fields: Iterable[str] = ()) -> dict[str, list]:
    """{field: [before, after]} for the fields whose values differ; a missing field counts as None.

    A field in `secret_fields` that changed shows as "***" on each side that has a value, so
    `diff({}, {"secret": s}, secret_fields=["secret"])` is `{"secret": [None, "***"]}`.
    """
    secret = set(secret_fields)
    changes = {}
    for name in dict.fromkeys([*before, *after]):
        old, new = json_value(before.get(name)), json_value(after.get(name))
        if old == new:
            continue
        if name in secret:
            changes[name] = [None if old is None else REDACTED, None if new is None else REDACTED]
        else:
            changes[name] = [_short(old), _short(new)]
    return changes


# --- who, where from -----------------------------------------------------------------------------


def _is_api_key(value: Any) -> bool:
    # The API-key model lives in accounts; anything with a string `prefix` and a pk acts as one.
    return (
        not isinstance(value, AbstractBaseUser)
        and isinstance(getattr(value, "prefix", None), str)
        and getattr(value, "pk", None) is not None
    )


def _key_user_id(key: Any) -> Any:
    return getattr(key, "created_by_id", None) or getattr(key, "user_id", None)


def _uuid_or_none(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _acting_key(user: AbstractBaseUser, request: AnyRequest | None) -> Any:
    """The API key behind this user's request, if it authenticated with one: the key authentication puts
    on the user object (`user.api_key`, see accounts.access) or leaves as the request's `auth`."""
    for candidate in (getattr(user, "api_key", None), getattr(request, "auth", None) if request is not None else None):
        if _is_api_key(candidate) and _key_user_id(candidate) == user.pk:
            return candidate
    return None


def _actor_fields(actor: Any, request: AnyRequest | None) -> dict:
    """Who acted. A user whose request authenticated with an API key of theirs is recorded as that key."""
    if actor is None:
        return {"actor_type": ActorType.SYSTEM, "actor_label": "system"}
    if isinstance(actor, str):
        return {"actor_type": ActorType.ANONYMOUS, "actor_label": _text(actor, 254)}
    key = actor if _is_api_key(actor) else None
    if isinstance(actor, AbstractBaseUser):
        key = _acting_key(actor, request)
    if key is not None:
        user_id = _key_user_id(key)
        return {
            "actor_type": ActorType.API_KEY,
            "actor_id": user_id,
            "actor_ref": _text(user_id, 64),
            "actor_label": _text(f"apikey:{key.prefix}", 254),
            "api_key_id": _uuid_or_none(key.pk),
        }
    return {
        "actor_type": ActorType.USER,
        "actor_id": actor.pk,
        "actor_ref": _text(actor.pk, 64),
        "actor_label": _text(actor.get_username(), 254),
    }


def client_ip(request: AnyRequest) -> str:
    """REMOTE_ADDR, or behind n trusted proxies (REST_FRAMEWORK's NUM_PROXIES, which the throttles use
    too) the address in X-Forwarded-For that the outermost of them received from. Entries further left
    are whatever the client sent, so they are never taken."""
    meta = request.META
    candidate = meta.get("REMOTE_ADDR", "")
    proxies = api_settings.NUM_PROXIES or 0
    forwarded = [part.strip() for part in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if proxies > 0 and forwarded:
        candidate = forwarded[-min(proxies, len(forwarded))]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return ""


def _request_fields(request: AnyRequest | None) -> dict:
    if request is None:
        return {"ip": "", "user_agent": "", "request_id": _text(request_id_var.get(), 128)}
    return {
        "ip": client_ip(request),
        "user_agent": _text(request.META.get("HTTP_USER_AGENT"), 256),
        "request_id": _text(getattr(request, "request_id", None) or request_id_var.get(), 128),
    }


def _workspace_fields(workspace: Workspace | uuid.UUID | str | None) -> dict:
    if workspace is None:
        return {}
    if isinstance(workspace, Workspace):
        return {"workspace_id": workspace.pk, "workspace_ref": str(workspace.pk), "workspace_label": workspace.name}
    return {"workspace_id": workspace, "workspace_ref": str(workspace)}


def _event(
    *,
    action: str,
    actor: Any = None,
    workspace: Workspace | uuid.UUID | str | None = None,
    target: models.Model | None = None,
    target_type: str = "",
    target_id: Any = "",
    changes: dict | None = None,
    request: AnyRequest | None = None,
) -> AuditEvent:
    if target is not None:
        target_type = target_type or target._meta.model_name
        target_id = target.pk
    fields = {
        **_actor_fields(actor, request),
        **_request_fields(request),
        **_workspace_fields(workspace),
        "action": _text(action, 64),
        "target_type": _text(target_type, 64),
        "target_id": _text(target_id, 255),
        "changes": json_value(changes or {}),
    }
    fields["workspace_label"] = _text(fields.get("workspace_label"), 200)
    return AuditEvent(**fields)


# --- the chain -----------------------------------------------------------------------------------


@cache
def _head_sql() -> tuple[str, str]:
    """The chain head's lock-and-read and its update. Every audited change runs both: written once
    here, not built by the ORM on each call. Names come from the model."""
    quote, field = connection.ops.quote_name, AuditChainHead._meta.get_field
    table = quote(AuditChainHead._meta.db_table)
    last_id, last_hash, pk = (quote(field(name).column) for name in ("last_id", "last_hash", "id"))
    lock = f"SELECT {last_id}, {last_hash} FROM {table} WHERE {pk} = 1 FOR UPDATE"  # noqa: S608 - quoted names
    move = f"UPDATE {table} SET {last_id} = %s, {last_hash} = %s WHERE {pk} = 1"  # noqa: S608 - quoted names
    return lock, move


def _head_locked() -> tuple[int, str]:
    """The chain head's (last id, last hash), row-locked until the transaction ends: the lock every
    append queues on."""
    lock, _ = _head_sql()
    with connection.cursor() as cursor:
        cursor.execute(lock)
        row = cursor.fetchone()
        if row is None:
            # A new database (or one a test flushed): start from the last event, if any.
            last = AuditEvent.objects.order_by("-id").values("id", "hash").first() or {"id": 0, "hash": GENESIS}
            AuditChainHead.objects.bulk_create(
                [AuditChainHead(pk=1, last_id=last["id"], last_hash=last["hash"])], ignore_conflicts=True
            )
            cursor.execute(lock)
            row = cursor.fetchone()
    return row


WRITE_BATCH = 500


@lru_cache(maxsize=8)
def _write_sql(count: int) -> str:
    """Insert `count` events and move the chain head to the last of them, in one statement."""
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in AuditEvent._meta.concrete_fields)
    row = "({})".format(", ".join(["%s"] * len(AuditEvent._meta.concrete_fields)))
    table = quote(AuditEvent._meta.db_table)
    return f"WITH moved AS ({_head_sql()[1]}) INSERT INTO {table} ({columns}) VALUES {', '.join([row] * count)}"  # noqa: S608


def _append(events: list[AuditEvent]) -> list[AuditEvent]:
    """Number, timestamp, chain and insert `events`: two statements (for up to WRITE_BATCH events).

    Inside the caller's transaction without a savepoint (two round trips fewer on every audited
    change): a failure here fails the caller's change with it, as it should.
    """
    with transaction.atomic(savepoint=False):
        last_id, last_hash = _head_locked()
        now = timezone.now()
        for event in events:
            last_id += 1
            event.id, event.timestamp, event.prev_hash = last_id, now, last_hash
            event.hash = last_hash = event_hash(last_hash, {name: getattr(event, name) for name in HASHED_FIELDS})
        fields = AuditEvent._meta.concrete_fields
        for start in range(0, len(events), WRITE_BATCH):  # within PostgreSQL's limit on parameters
            batch = events[start : start + WRITE_BATCH]
            rows = [
                field.get_db_prep_save(field.pre_save(event, True), connection) for event in batch for field in fields
            ]
            with connection.cursor() as cursor:
                cursor.execute(_write_sql(len(batch)), [batch[-1].id, batch[-1].hash, *rows])
    for event in events:  # saved now, as bulk_create would have left them
        event._state.adding, event._state.db = False, connection.alias
    return events


def audit_record(
    *,
    action: str,
    actor: Any = None,
    workspace: Workspace | uuid.UUID | str | None = None,
    target: models.Model | None = None,
    target_type: str = "",
    target_id: Any = "",
    changes: dict | None = None,
    request: AnyRequest | None = None,
) -> AuditEvent:
    """Append one event to the audit trail, in the caller's transaction.

    `actor`: a User; an API key (anything with `.prefix` and a pk, recorded as `apikey:<prefix>` on
    behalf of its `created_by`); a string naming someone not logged in (a failed login's email); or
    None for the system. A User whose `request` authenticated with one of their API keys is recorded
    as that key. `target` (a model instance) sets target_type (its model name, unless given) and
    target_id. `changes` is {field: [before, after]} (see `diff`); it must never hold a secret.
    `request` gives the client address, user agent and request id; without one the request id comes
    from the current request or task context.
    """
    [event] = _append(
        [
            _event(
                action=action,
                actor=actor,
                workspace=workspace,
                target=target,
                target_type=target_type,
                target_id=target_id,
                changes=changes,
                request=request,
            )
        ]
    )
    return event


def audit_record_many(*, records: Iterable[dict], actor: Any = None, request: AnyRequest | None = None) -> list:
    """Append several events by one actor at once (a bulk action): each record holds audit_record's other
    keyword arguments (action, workspace, target, target_type, target_id, changes)."""
    events = [_event(actor=actor, request=request, **record) for record in records]
    return _append(events) if events else []


# --- retention -----------------------------------------------------------------------------------


def audit_purge(*, before: datetime, actor: Any = None) -> AuditCheckpoint | None:
    """Delete every event up to the last one older than `before`, leaving a checkpoint and an
    `audit.purged` event so that the rest of the chain still verifies. None if nothing was old enough.

    Runs under the chain lock, so no event is appended while the old end is cut off.
    """
    with transaction.atomic():
        _head_locked()
        last = AuditEvent.objects.filter(timestamp__lt=before).order_by("-id").values("id", "hash").first()
        if last is None:
            return None
        table = connection.ops.quote_name(AuditEvent._meta.db_table)
        with connection.cursor() as cursor:
            # The only way past the append-only trigger (audit migration 0002), for this transaction.
            cursor.execute("SET LOCAL audit.allow_purge = 'on'")
            cursor.execute(f"DELETE FROM {table} WHERE id <= %s", [last["id"]])  # noqa: S608 - a quoted table name
            count = cursor.rowcount
            cursor.execute("SET LOCAL audit.allow_purge = 'off'")
        event = audit_record(
            action="audit.purged",
            actor=actor,
            target_type="audit_event",
            target_id=last["id"],
            changes={
                "count": [None, count],
                "last_id": [None, last["id"]],
                "last_hash": [None, last["hash"]],
                "purged_before": [None, timestamp_text(before)],
            },
        )
        return AuditCheckpoint.objects.create(
            created_at=event.timestamp,
            purged_before=before,
            count=count,
            last_id=last["id"],
            last_hash=last["hash"],
            event_id=event.id,
        )


def audit_purge_expired() -> AuditCheckpoint | None:
    """Apply AUDIT_RETENTION_DAYS (0 keeps everything)."""
    days = settings.AUDIT_RETENTION_DAYS
    if days <= 0:
        return None
    return audit_purge(before=timezone.now() - timedelta(days=days))
