"""How an audit event is hashed and the chain checked: the one definition the writer and the verifier share.

hash = SHA-256 hex of prev_hash + the canonical JSON of HASHED_FIELDS (sorted keys, no spaces, ids
and UUIDs as text, the timestamp as ISO 8601 UTC with microseconds). The first event's prev_hash is
GENESIS.
"""

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction

from audit.models import AuditChainHead, AuditCheckpoint, AuditEvent

GENESIS = "0" * 64

HASHED_FIELDS = (
    "id",
    "timestamp",
    "actor_type",
    "actor_ref",
    "actor_label",
    "api_key_id",
    "workspace_ref",
    "workspace_label",
    "action",
    "target_type",
    "target_id",
    "changes",
    "ip",
    "user_agent",
    "request_id",
)


def json_value(value: Any) -> Any:
    """`value` as what a JSON column gives back, so that a hash computed before the INSERT equals one
    computed from the stored row.

    PostgreSQL's jsonb keeps numbers as decimals: 1e+20 comes back as 100000000000000000000, an int.
    Integral floats are therefore stored as ints; NaN and infinities (not JSON) as text; NUL
    characters and lone surrogates, which jsonb refuses, as replacement characters.
    """
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return int(value) if value.is_integer() else value
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(key)): json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(item) for item in value]
    # Dates, UUIDs, decimals and the like: as Django's JSON encoder writes them.
    return json_value(json.loads(json.dumps(value, cls=DjangoJSONEncoder)))


def clean_text(value: str) -> str:
    return value.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")


def timestamp_text(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def canonical(fields: dict[str, Any]) -> str:
    document = {}
    for name in HASHED_FIELDS:
        value = fields[name]
        if name == "timestamp":
            value = timestamp_text(value)
        elif name == "changes":
            value = json_value(value)
        elif value is not None:
            value = str(value)
        document[name] = value
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    return hashlib.sha256((prev_hash + canonical(fields)).encode()).hexdigest()


# --- verification --------------------------------------------------------------------------------

MISSING_BEFORE = "events #{first} to #{last} are missing before it"
PREV_MISMATCH = "its prev_hash is not the hash of the event before it"
HASH_MISMATCH = "its hash does not match its contents"
ACTOR_MISMATCH = "its actor is not the user its hashed actor_ref names"
WORKSPACE_MISMATCH = "its workspace is not the one its hashed workspace_ref names"
BEFORE_CHECKPOINT = "it is older than the purge checkpoint the chain starts from, so it should not exist"
CHECKPOINT_MISMATCH = "it does not record the purge checkpoint the chain starts from"
CHECKPOINT_EVENT_MISSING = "the audit.purged event of the latest purge checkpoint is missing"
TAIL_MISSING = "events after #{last} are missing: the chain head is at #{head}"


@dataclass
class Verification:
    """What `chain_verify` found: how many events it checked, and the first broken one, if any."""

    count: int = 0
    start_id: int = 1
    broken_id: int | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return not self.reason


def _fk_matches(fk_value: Any, ref: str) -> bool:
    # The foreign key is NULL once its user or workspace is deleted; otherwise it must be the hashed id.
    return fk_value is None or str(fk_value) == ref


def _checkpoint_problem(checkpoint: AuditCheckpoint) -> Verification | None:
    event = AuditEvent.objects.filter(pk=checkpoint.event_id).values("action", "changes").first()
    if event is None:
        return Verification(
            start_id=checkpoint.last_id + 1, broken_id=checkpoint.event_id, reason=CHECKPOINT_EVENT_MISSING
        )
    changes = event["changes"]
    recorded = (changes.get("last_id", [None, None])[1], changes.get("last_hash", [None, None])[1])
    if event["action"] != "audit.purged" or recorded != (checkpoint.last_id, checkpoint.last_hash):
        return Verification(start_id=checkpoint.last_id + 1, broken_id=checkpoint.event_id, reason=CHECKPOINT_MISMATCH)
    return None


def chain_verify(*, chunk_size: int = 2000) -> Verification:
    """Recompute the chain from its start: the first event, or the one after the latest purge checkpoint.

    Reads one snapshot (REPEATABLE READ) so that appends and purges running meanwhile
    cannot look like tampering. Streams the rows, so memory does not grow with the table.
    """
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        return _verify(chunk_size)


def _verify(chunk_size: int) -> Verification:
    checkpoint = AuditCheckpoint.objects.order_by("-last_id").first()
    if checkpoint is not None and (problem := _checkpoint_problem(checkpoint)):
        return problem
    expected_id, prev = (checkpoint.last_id + 1, checkpoint.last_hash) if checkpoint else (1, GENESIS)
    result = Verification(start_id=expected_id)
    columns = (*HASHED_FIELDS, "actor_id", "workspace_id", "prev_hash", "hash")
    rows = AuditEvent.objects.order_by("id").values_list(*columns, named=True)
    for row in rows.iterator(chunk_size=chunk_size):
        if row.id < expected_id:
            reason = BEFORE_CHECKPOINT
        elif row.id > expected_id:
            reason = MISSING_BEFORE.format(first=expected_id, last=row.id - 1)
        elif row.prev_hash != prev:
            reason = PREV_MISMATCH
        elif event_hash(prev, row._asdict()) != row.hash:
            reason = HASH_MISMATCH
        elif not _fk_matches(row.actor_id, row.actor_ref):
            reason = ACTOR_MISMATCH
        elif not _fk_matches(row.workspace_id, row.workspace_ref):
            reason = WORKSPACE_MISMATCH
        else:
            result.count += 1
            prev, expected_id = row.hash, expected_id + 1
            continue
        result.broken_id, result.reason = row.id, reason
        return result
    head = AuditChainHead.objects.filter(pk=1).values("last_id").first()
    if head is not None and head["last_id"] > expected_id - 1:
        result.broken_id, result.reason = expected_id, TAIL_MISSING.format(last=expected_id - 1, head=head["last_id"])
    return result


# --- anchors -------------------------------------------------------------------------------------
#
# The chain shows edits made through the application or by hand in SQL, but someone with full
# database access could rewrite every hash from the edited row on. An anchor, the (id, hash) of the
# chain's head at some moment, copied out of the database (the hourly `audit anchor` log line, or
# `manage.py audit_anchor` into a ticket), makes that rewrite show too: `audit_verify --anchor`.

ANCHOR_REWRITTEN = "anchor #{id} does not match: event #{id} now hashes to {actual}, so the trail was rewritten"
ANCHOR_MISSING = "anchor #{id} names an event that is gone, beyond the chain's head #{head}: events were removed"
ANCHOR_PURGED = "anchor #{id} is older than the purge checkpoint at #{last_id}; it can no longer be checked"


@dataclass(frozen=True)
class Anchor:
    id: int
    hash: str

    @classmethod
    def parse(cls, text: str) -> "Anchor":
        """'<id>:<hash>', as `audit_anchor` prints it."""
        number, separator, digest = text.strip().lstrip("#").partition(":")
        if not separator or not number.isdigit() or len(digest) != 64:
            raise ValueError(f"{text!r} is not an anchor: expected <event id>:<64 hex digits>")
        return cls(int(number), digest.lower())

    def __str__(self) -> str:
        return f"{self.id}:{self.hash}"


def chain_anchor() -> Anchor | None:
    """The chain's head now; None while the trail is empty."""
    head = AuditChainHead.objects.filter(pk=1).values("last_id", "last_hash").first()
    if head is None or not head["last_id"]:
        return None
    return Anchor(head["last_id"], head["last_hash"])


def anchors_check(anchors: list[Anchor]) -> tuple[list[str], list[str]]:
    """(problems, notes): an anchor the stored chain contradicts is a problem; one purged since, a note."""
    problems, notes = [], []
    checkpoint = AuditCheckpoint.objects.order_by("-last_id").values("last_id", "last_hash").first()
    stored = dict(AuditEvent.objects.filter(pk__in=[anchor.id for anchor in anchors]).values_list("id", "hash"))
    head = chain_anchor()
    for anchor in anchors:
        if anchor.id in stored:
            if stored[anchor.id] != anchor.hash:
                problems.append(ANCHOR_REWRITTEN.format(id=anchor.id, actual=stored[anchor.id]))
        elif checkpoint and anchor.id == checkpoint["last_id"]:
            if checkpoint["last_hash"] != anchor.hash:
                problems.append(ANCHOR_REWRITTEN.format(id=anchor.id, actual=checkpoint["last_hash"]))
        elif checkpoint and anchor.id < checkpoint["last_id"]:
            notes.append(ANCHOR_PURGED.format(id=anchor.id, last_id=checkpoint["last_id"]))
        else:
            problems.append(ANCHOR_MISSING.format(id=anchor.id, head=head.id if head else 0))
    return problems, notes
