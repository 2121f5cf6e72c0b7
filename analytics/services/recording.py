"""The analytics event stream and the rollups kept from it.

Two steps, so that nothing the product does waits on the figures:

1. `events_record`: whoever knows an event hands it over as plain data once its transaction committed
   (the run-events task for runs, steps and documents; the webhook, schedule, approval, notification
   and login services for theirs). One INSERT into `analytics_event`, once per type and subject (an
   event handed over twice counts once).
2. `rollups_catch_up`: one writer at a time (a PostgreSQL advisory lock) adds the events not added yet
   to the rollups of their minute, hour and day, in batches, and marks them added, in one transaction
   per batch. The run-events task calls it after recording; beat calls it every 30 seconds for the
   events recorded elsewhere. With one writer there is no lock order to get wrong between workers,
   and the rows of a busy workflow's minute are updated once per batch, not once per run.

An event: `{type, subject, workspace, workflow (or None), ts, data}`, `data` by type:

    run.started          trigger
    run.finished         status (succeeded|failed|cancelled), timed_out, trigger, created_at, started_at,
                         duration_ms, tokens_in, tokens_out, cost, error_type, error_message
    step.finished        key, type, status, attempt, crashes, duration_ms, tokens_in, tokens_out, cost,
                         error_type, host (the host an HTTP step called)
    document.generated   node_key, provider, model, tokens_in, tokens_out, cost, cached
    webhook.received / webhook.rejected     reason (rejected)
    schedule.fired / schedule.missed        slots (how many)
    approval.decided     decision
    notification.delivered / notification.failed   channel (its kind)
    login / api_key.used user, method (login)
    budget.threshold     budget
"""

import json
import logging
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError, connection, transaction
from django.db.models import Q
from django.db.models.expressions import RawSQL
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from analytics.models import NO_WORKFLOW, Event, Rollup, StepRollup, Tally, WorkspaceRollup
from analytics.services.rollup_sql import id_array, runs_and_steps_add

Granularity = Rollup.Granularity
GRANULARITIES = tuple(Granularity.values)  # (the enum's `values` builds its list at every reading)
BUCKET_SPANS = {
    Granularity.MINUTE: timedelta(minutes=1),
    Granularity.HOUR: timedelta(hours=1),
    Granularity.DAY: timedelta(days=1),
}
TALLY_KEY = ("granularity", "workspace_id", "bucket", "workflow_id", "kind", "label")
TALLY_FIGURES = ("count", "value", "tokens_in", "tokens_out", "cost")
# The rollup writer's advisory lock (two int4 keys: "analytics", "rollups"). Tests that wipe the
# database take it too, so that the wipe never meets a writer half-way.
ROLLUP_WRITER_LOCK = (0x616E616C, 0x726F6C6C)
BATCH_SIZE = 2000
# Tallies that count what an event of the type says, by the label its data names.
LABELLED_TALLIES = {
    Event.Type.WEBHOOK_RECEIVED: None,
    Event.Type.WEBHOOK_REJECTED: "reason",
    Event.Type.SCHEDULE_FIRED: None,
    Event.Type.SCHEDULE_MISSED: None,
    Event.Type.APPROVAL_DECIDED: "decision",
    Event.Type.NOTIFICATION_DELIVERED: "channel",
    Event.Type.NOTIFICATION_FAILED: "channel",
    Event.Type.LOGIN: "method",
    Event.Type.API_KEY_USED: None,
    Event.Type.BUDGET_THRESHOLD: "budget",
}
MAX_LABEL = 200

logger = logging.getLogger(__name__)


def bucket_start(moment: datetime, granularity: str) -> datetime:
    """The start of the bucket holding `moment` (UTC minutes, hours and days)."""
    moment = moment.astimezone(UTC).replace(second=0, microsecond=0)
    if granularity == Granularity.MINUTE:
        return moment
    moment = moment.replace(minute=0)
    return moment if granularity == Granularity.HOUR else moment.replace(hour=0)


def lock_for_transaction(key: tuple[int, int]) -> None:
    """Wait for, then hold until the current transaction ends, the advisory lock `key` (one writer of
    the rollups, one refresh of the insights)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", key)


def _moment(value) -> datetime | None:
    return parse_datetime(value) if isinstance(value, str) else value


# --- 1. the stream --------------------------------------------------------------------------------


def events_record(events: Iterable[dict]) -> int:
    """Add events to the stream (see the module's docstring); one counted before is not counted again.
    Returns how many were new. One statement on one table: safe to call anywhere after a commit."""
    rows = {(event["type"], str(event["subject"])[:200]): event for event in events}
    if not rows:
        return 0
    columns = {"type": [], "subject": [], "workspace": [], "workflow": [], "ts": [], "data": []}
    for (type_, subject), event in rows.items():
        columns["type"].append(type_)
        columns["subject"].append(subject)
        columns["workspace"].append(str(event["workspace"]))
        columns["workflow"].append(str(event["workflow"]) if event.get("workflow") else None)
        columns["ts"].append(_moment(event["ts"]))
        columns["data"].append(json.dumps(event.get("data") or {}, cls=DjangoJSONEncoder))
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO analytics_event (type, subject, workspace_id, workflow_id, ts, data, recorded_at, rolled_up) "
            "SELECT type, subject, workspace, workflow, ts, data, now(), false FROM unnest("
            "%s::varchar[], %s::varchar[], %s::uuid[], %s::uuid[], %s::timestamptz[], %s::jsonb[]"
            ") AS new (type, subject, workspace, workflow, ts, data) "
            "ON CONFLICT (type, subject) DO NOTHING RETURNING id",
            list(columns.values()),
        )
        return len(cursor.fetchall())


def events_record_after_commit(events: list[dict]) -> None:
    """`events_record` once the current transaction commits (at once outside one). A database that
    cannot take them costs these counts (logged), never the action that caused them."""

    def record() -> None:
        try:
            events_record(events)
        except DatabaseError:
            logger.warning("analytics events not recorded", extra={"types": sorted({e["type"] for e in events})})

    if events:
        transaction.on_commit(record)


# --- 2. the rollups -------------------------------------------------------------------------------


def rollups_catch_up(*, batch_size: int = BATCH_SIZE) -> int:
    """Add the events not added yet to the rollups, oldest first, one batch per transaction, as the one
    writer (waits for another writer to finish). Returns how many events were added."""
    added, after = 0, 0
    while True:
        with transaction.atomic():
            lock_for_transaction(ROLLUP_WRITER_LOCK)
            # The ids first, from the partial index of the events not added (an index-only scan, whatever
            # the statistics say of how many there are), after the last batch's: the entries of the
            # batches added before stay in the index until a vacuum, and are not read again. (An event
            # committed late under a smaller id waits for the next call: beat's, or the next run's.)
            pending = Event.objects.filter(rolled_up=False, id__gt=after).order_by("id")
            ids = list(pending.values_list("id", flat=True)[:batch_size])
            if not ids:
                return added
            after = ids[-1]
            _rollups_add(ids)
            Event.objects.filter(pk__in=_listed(ids)).update(rolled_up=True)
        added += len(ids)


def _rollups_add(ids: list[int], *, floor: datetime | None = None) -> None:
    """Add the events of these ids to the rows of their minute, hour and day: runs to Rollup and
    WorkspaceRollup, steps to StepRollup set-based in PostgreSQL (analytics.services.rollup_sql), the
    rest to Tally. Only the events that add to a tally are read into Python: of the steps, those
    retried behind a host. A run's time in flight goes to no bucket before `floor` (a rebuild's start:
    the buckets before it kept their share)."""
    runs_and_steps_add(ids)
    tallied = Event.objects.filter(pk__in=_listed(ids)).filter(
        ~Q(type=Event.Type.STEP_FINISHED) | Q(data__has_key="host", data__attempt__gt=1)
    )
    tallies: dict[tuple, dict] = {}
    for event in tallied.order_by("id"):
        workflow = str(event.workflow_id or NO_WORKFLOW)
        counted = [(kind, str(label or "")[:MAX_LABEL], part) for kind, label, part in _tallies_of(event)]
        if counted:
            workspace = str(event.workspace_id)
            for granularity in GRANULARITIES:
                key = (granularity, workspace, bucket_start(event.ts, granularity), workflow)
                for kind, label, part in counted:
                    _add(tallies, (*key, kind, label), part)
        if event.type == Event.Type.RUN_FINISHED:
            for key, part in _busy(event, floor):
                _add(tallies, key, part)
    _tallies_upsert(tallies)


def _listed(ids: list[int]) -> RawSQL:
    """A batch's ids as one array parameter: `pk__in` a list of 2,000 would be 2,000 placeholders, each
    prepared by the ORM and split out of the statement by the driver (most of the writer's own CPU)."""
    return RawSQL("SELECT unnest(%s::bigint[])", (id_array(ids),))


def _add(increments: dict[tuple, dict], key: tuple, part: dict) -> None:
    increments[key] = _combined(increments.get(key, {}), part)


def _tallies_of(event: Event) -> Iterator[tuple[str, str, dict]]:
    """The tallies (kind, label, increment) one event adds to, in each of its buckets."""
    data, one = event.data, {"count": 1}
    if event.type == Event.Type.RUN_STARTED:
        yield "run.trigger", data.get("trigger", ""), one
    elif event.type == Event.Type.RUN_FINISHED and data.get("status") == "failed":
        yield "error.type", data.get("error_type") or "unknown", one
        yield "error.message", message_cluster(data.get("error_type"), data.get("error_message")), one
    elif event.type == Event.Type.STEP_FINISHED and data.get("host") and int(data.get("attempt") or 1) > 1:
        yield "retries.host", data["host"], {"count": int(data["attempt"]) - 1}
    elif event.type == Event.Type.DOCUMENT_GENERATED:
        spent = {name: data.get(name) or 0 for name in ("tokens_in", "tokens_out", "cost")}
        yield "generation", f"{data.get('provider', '')}/{data.get('model', '')}", {"count": 1, **spent}
        if data.get("cached"):
            yield "generation.cached", data.get("provider", ""), one
    elif event.type in LABELLED_TALLIES:
        label = data.get(LABELLED_TALLIES[event.type]) if LABELLED_TALLIES[event.type] else ""
        yield event.type, label, {"count": int(data.get("slots") or 1)}
        if event.type in (Event.Type.LOGIN, Event.Type.API_KEY_USED) and data.get("user"):
            yield "member.active", data["user"], one


def _busy(event: Event, floor: datetime | None) -> Iterator[tuple[tuple, dict]]:
    """The run's time in flight, split over the buckets it overlapped: a bucket's `run.busy` value over
    its length is the mean number of runs in flight (Little's law)."""
    started, finished = _moment(event.data.get("started_at")), event.ts
    if started and floor:
        started = max(started, floor)
    if not started or started >= finished:
        return
    workspace, workflow = str(event.workspace_id), str(event.workflow_id or NO_WORKFLOW)
    for granularity in GRANULARITIES:
        moment = bucket_start(started, granularity)
        while moment < finished:
            end = moment + BUCKET_SPANS[granularity]
            overlap = (min(end, finished) - max(moment, started)).total_seconds() * 1000
            yield (granularity, workspace, moment, workflow, "run.busy", ""), {"count": 0, "value": overlap}
            moment = end


NUMBERS = re.compile(r"\b[0-9a-f]{8}-[0-9a-f-]{27,}\b|0x[0-9a-f]+|\d+(?:\.\d+)?", re.IGNORECASE)
QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def message_cluster(error_type: str | None, message: str | None) -> str:
    """Error messages that differ only in ids, numbers and quoted values are one cluster:
    `timeout: step 'fetch' took 31 s` and `… 'send' took 45 s` are `timeout: step '…' took # s`."""
    text = QUOTED.sub("'…'", NUMBERS.sub("#", (message or "").strip().splitlines()[0] if message else ""))
    return f"{error_type or 'unknown'}: {text}"[:MAX_LABEL]


def _combined(total: dict, part: dict) -> dict:
    """Two tally increments (or a row's figures and an increment) as one: every figure adds."""
    return {name: total.get(name, 0) + value for name, value in part.items()}


def _tallies_upsert(increments: dict[tuple, dict]) -> None:
    """Add the increments to the tallies their keys name, in one statement: the rows as one JSON array,
    the missing ones made, the others added to (every figure of a tally adds)."""
    if not increments:
        return
    rows = [
        {**dict(zip(TALLY_KEY, key, strict=True)), **{name: 0 for name in TALLY_FIGURES}, **part}
        for key, part in sorted(increments.items())
    ]
    columns = ", ".join((*TALLY_KEY, *TALLY_FIGURES))
    added = ", ".join(f"{name} = analytics_tally.{name} + excluded.{name}" for name in TALLY_FIGURES)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO analytics_tally ({columns}) SELECT {columns} "  # noqa: S608 - our column names
            f"FROM jsonb_populate_recordset(NULL::analytics_tally, %s::jsonb) "
            f"ON CONFLICT ({', '.join(TALLY_KEY)}) DO UPDATE SET {added}",
            [json.dumps(rows, cls=DjangoJSONEncoder)],
        )


def rollups_rebuild(*, since: datetime) -> int:
    """Make the rollups from the start of `since`'s day again from the analytics events (after an
    upgrade that changes what a rollup holds, or a repair): the rows of every granularity from then are
    deleted and the events since then added again, in one transaction, as the writer. Returns how many
    events were added. Events older than their retention are gone: rebuild no further back than it."""
    since = bucket_start(since, Granularity.DAY)
    added = 0
    with transaction.atomic():
        lock_for_transaction(ROLLUP_WRITER_LOCK)
        for model in (Rollup, WorkspaceRollup, StepRollup, Tally):
            model.objects.filter(bucket__gte=since).delete()
        events = Event.objects.filter(ts__gte=since).order_by("id")
        for chunk in _chunks(events.values_list("id", flat=True).iterator(chunk_size=BATCH_SIZE), BATCH_SIZE):
            _rollups_add(chunk, floor=since)
            added += len(chunk)
        events.filter(rolled_up=False).update(rolled_up=True)
    return added


def _chunks(rows: Iterable, size: int) -> Iterator[list]:
    chunk = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def analytics_prune(now: datetime | None = None) -> dict[str, int]:
    """Forget what the retention settings say is no longer kept: minute rollups older than
    DWC_ANALYTICS_MINUTE_ROLLUP_DAYS, hour rollups older than DWC_ANALYTICS_HOUR_ROLLUP_DAYS (day rollups
    stay), events older than DWC_ANALYTICS_EVENT_RETENTION_DAYS. Beat runs it hourly."""
    now = now or timezone.now()
    kept = {
        Granularity.MINUTE: settings.DWC_ANALYTICS_MINUTE_ROLLUP_DAYS,
        Granularity.HOUR: settings.DWC_ANALYTICS_HOUR_ROLLUP_DAYS,
    }
    pruned = {}
    for granularity, days in kept.items():
        cutoff = now - timedelta(days=days)
        pruned[granularity] = Rollup.objects.filter(granularity=granularity, bucket__lt=cutoff).delete()[0]
        for model in (WorkspaceRollup, StepRollup, Tally):
            model.objects.filter(granularity=granularity, bucket__lt=cutoff).delete()
    events = Event.objects.filter(ts__lt=now - timedelta(days=settings.DWC_ANALYTICS_EVENT_RETENTION_DAYS))
    pruned["events"] = events.delete()[0]
    return pruned
