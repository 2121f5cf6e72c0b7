"""The engine's reads and writes of run state: the only engine module that writes to the database.

Everything here is called under the run's row lock (`run_lock`), inside a transaction that
`workflows.engine.transition` opened, except where a docstring says otherwise. Writes of many rows
take one statement whatever their number (`insert_rows`, `update_rows`), and a transition writes all
the steps, runs and events it changed in one statement when it ends (`write`), not one per change.
"""

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime, timedelta
from datetime import time as dt_time
from decimal import Decimal
from functools import cache, lru_cache
from typing import TypeVar

from django.db import DEFAULT_DB_ALIAS, DatabaseError, InterfaceError, OperationalError, connection, connections, models
from django.db.models import Count, Max, Q
from psycopg.types.json import Jsonb

from workflows.models import Document, EngineDrain, EventTrigger, Run, RunEvent, RunsPause, StepRun, Workflow

logger = logging.getLogger(__name__)
T = TypeVar("T")

# The database could not be reached or broke off the transaction (connection lost, server restarting,
# deadlock): nothing the step did wrong, and a write that failed so is worth trying again.
DATABASE_UNREACHABLE = (OperationalError, InterfaceError)

# The first key of the two-key advisory locks that serialize document version numbering.
DOCUMENT_VERSION_LOCK = 0x646F63  # "doc"
ACTIVE_RUN = (Run.Status.RUNNING, Run.Status.WAITING)


# --- reading under the lock -----------------------------------------------------------------
# The run lock and the steps' read are the engine's hottest queries (several per step). Their SQL
# is written once per process; the ORM builds the instances (`raw()`), as it does for a queryset.


@cache
def _lock_sql(*, skip_locked: bool, many: bool = False) -> str:
    quote = connection.ops.quote_name
    run_table, trigger_table = quote(Run._meta.db_table), quote(EventTrigger._meta.db_table)
    source, enabled = (quote(EventTrigger._meta.get_field(name).column) for name in ("source_workflow", "enabled"))
    workflow, pk = quote(Run._meta.get_field("workflow").column), quote(Run._meta.pk.column)
    # `followed`: whether event triggers follow the run's workflow, so that finishing it needs no query.
    # `draining`: whether the engine drains (no step may start), read with the lock for the same reason.
    return (
        f"SELECT {run_table}.*, EXISTS (SELECT 1 FROM {trigger_table} "  # noqa: S608 - quoted names only
        f"WHERE {trigger_table}.{source} = {run_table}.{workflow} AND {trigger_table}.{enabled}) AS followed, "
        f"EXISTS (SELECT 1 FROM {quote(EngineDrain._meta.db_table)}) AS draining "
        f"FROM {run_table} WHERE {run_table}.{pk} = {'ANY(%s::uuid[])' if many else '%s'} "
        f"FOR NO KEY UPDATE{' SKIP LOCKED' if skip_locked else ''}"
    )


def run_lock(run_id, *, wait: bool = True) -> Run | None:
    """The run, row-locked until the transaction ends; None if there is none (or, not waiting, it is held).

    NO KEY UPDATE, so that inserts that refer to the run (steps, events, child runs) never wait on it.
    """
    run_uuid = _uuid(run_id)
    if run_uuid is None:
        return None
    return next(iter(Run.objects.raw(_lock_sql(skip_locked=not wait), [run_uuid])), None)


def runs_lock_free(run_ids) -> list[Run]:
    """Those of the runs no other transaction holds, row-locked as `run_lock` locks one, in one query."""
    ids = [run_uuid for run_uuid in map(_uuid, run_ids) if run_uuid is not None]
    return list(Run.objects.raw(_lock_sql(skip_locked=True, many=True), [ids])) if ids else []


@cache
def _steps_sql() -> str:
    quote = connection.ops.quote_name
    run = quote(StepRun._meta.get_field("run").column)
    return f"SELECT * FROM {quote(StepRun._meta.db_table)} WHERE {run} = ANY(%s::uuid[])"  # noqa: S608


def run_steps(*run_ids) -> list[StepRun]:
    """The steps of these runs (read under their locks), in one query."""
    return list(StepRun.objects.raw(_steps_sql(), [[_uuid(run_id) for run_id in run_ids]]))


def step_run_id(step_id):
    """The run of a step (None if there is no such step): read before taking the run's lock."""
    return StepRun.objects.filter(pk=step_id).values_list("run_id", flat=True).first()


def step_claim_state(step_id) -> tuple[str, int] | None:
    """(status, attempt) of a step as committed, without loading its run's steps."""
    return StepRun.objects.filter(pk=step_id).values_list("status", "attempt").first()


# --- writing rows ------------------------------------------------------------------------------


@lru_cache(maxsize=16)
def _insert_sql(model: type[models.Model]) -> tuple[str, tuple[models.Field, ...]]:
    """INSERT … SELECT from the rows given as one JSON array of objects keyed by column.

    One parameter, whatever the number of rows and columns: every insert of a model is the same
    statement, which psycopg converts once and PostgreSQL plans alike, where a parameter per value
    made a run's insert a new statement for psycopg each time (more than its cache's 50 parameters).
    """
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    fields = tuple(field for field in model._meta.concrete_fields if not isinstance(field, models.AutoField))
    columns = ", ".join(quote(field.column) for field in fields)
    source = f"jsonb_populate_recordset(NULL::{table}, %s::jsonb)"
    return f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {source}", fields  # noqa: S608 - quoted names


def _json_value(value):
    """JSON for what `get_db_prep_save` gives and json cannot encode; PostgreSQL casts it to the column."""
    if isinstance(value, Jsonb):
        return value.obj
    if isinstance(value, (datetime, date, dt_time)):
        return value.isoformat()  # in full: DjangoJSONEncoder would cut microseconds
    if isinstance(value, (uuid.UUID, Decimal)):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _rows_json(rows: list[dict]) -> str:
    return json.dumps(rows, default=_json_value, allow_nan=False)


def _insert(model: type[models.Model], instances: Sequence[models.Model]) -> tuple[str, list]:
    """The INSERT statement for `instances` (at least one), and its one parameter."""
    sql, fields = _insert_sql(model)
    # The connection itself: `django.db.connection` looks it up again on each use, and the fields
    # convert each value with a few uses.
    db = connections[DEFAULT_DB_ALIAS]
    rows = [
        {field.column: field.get_db_prep_save(field.pre_save(row, True), db) for field in fields} for row in instances
    ]
    return sql, [_rows_json(rows)]


def insert_rows(*groups: tuple[type[models.Model], Sequence[models.Model]]) -> None:
    """`bulk_create` for each (model, instances), all in one statement; auto-increment keys are not read back.

    Rows may refer to rows of another group: foreign keys are checked at commit (Django makes
    them deferrable on PostgreSQL), so a run, its steps and its events go in one round trip.
    """
    _write({}, [(model, instances) for model, instances in groups if instances], flush_wait=True)


@lru_cache(maxsize=64)
def _update_sql(model: type[models.Model], names: tuple[str, ...]) -> tuple[str, tuple[models.Field, ...]]:
    """UPDATE … FROM the rows given as one JSON array of objects keyed by column, as `_insert_sql`
    inserts them: the text depends on the fields only, not on how many rows there are."""
    quote = connection.ops.quote_name
    table, pk = quote(model._meta.db_table), quote(model._meta.pk.column)
    fields = tuple(model._meta.get_field(name) for name in names)
    assignments = ", ".join(f"{quote(field.column)} = row.{quote(field.column)}" for field in fields)
    source = f"jsonb_populate_recordset(NULL::{table}, %s::jsonb) AS row"
    # The keys once more, as an array: the planner takes any set-returning function for 100 rows and
    # would join them to a scan of the whole table; with the array it looks the rows up by key.
    keys = f"{table}.{pk} = ANY(%s::{model._meta.pk.db_type(connection)}[])"
    sql = f"UPDATE {table} SET {assignments} FROM {source} WHERE {keys} AND {table}.{pk} = row.{pk} RETURNING 1"  # noqa: S608
    return sql, (*fields, model._meta.pk)


def _update(model: type[models.Model], names: tuple[str, ...], instances: list[models.Model]) -> tuple[str, list]:
    """The UPDATE statement for these instances' fields `names`, and its parameters: the rows, their keys."""
    sql, fields = _update_sql(model, names)
    db = connections[DEFAULT_DB_ALIAS]  # as in `_insert`
    rows = [
        {field.column: field.get_db_prep_save(getattr(row, field.attname), db) for field in fields} for row in instances
    ]
    return sql, [_rows_json(rows), [row.pk for row in instances]]


def _grouped(changes: Iterable[tuple[models.Model, Iterable[str]]]) -> dict[tuple, list[models.Model]]:
    """The instances by (model, the names of their changed fields): one UPDATE each."""
    groups: dict[tuple, list[models.Model]] = {}
    for instance, names in changes:
        groups.setdefault((type(instance), tuple(sorted(names))), []).append(instance)
    return groups


def update_rows(changes: Iterable[tuple[models.Model, Iterable[str]]]) -> None:
    """`instance.save(update_fields=names)` for each (instance, names), for models without save
    signals: one UPDATE for all instances of a model whose fields are the same.

    Raises DatabaseError when a row was not updated, as save() does.
    """
    for key, instances in _grouped(changes).items():
        _write({key: instances}, [], flush_wait=True)


def write(
    changes: Iterable[tuple[models.Model, Iterable[str]]],
    inserts: Sequence[tuple[type[models.Model], Sequence[models.Model]]] = (),
    *,
    flush_wait: bool = True,
) -> None:
    """`update_rows(changes)` and `insert_rows(*inserts)` in one statement, its parts joined by WITH:
    a transition's writes cost one round trip, whatever it changed. Each instance is named once.

    Without `flush_wait` the statement also lets this transaction's COMMIT return before PostgreSQL
    has flushed it to disk (`Transition.commit_without_flush_wait` says when that is safe).
    Raises DatabaseError when a row was not updated, as save() does.
    """
    _write(_grouped(changes), [(model, rows) for model, rows in inserts if rows], flush_wait=flush_wait)


def _write(updates: dict[tuple, list[models.Model]], inserts: list, *, flush_wait: bool) -> None:
    parts = [
        (f"updated_{index}", *_update(model, names, rows))
        for index, ((model, names), rows) in enumerate(updates.items())
    ]
    parts += [(f"inserted_{index}", *_insert(model, rows)) for index, (model, rows) in enumerate(inserts)]
    # What the statement answers: how many rows each UPDATE changed (and the commit's new setting).
    answers = [f"(SELECT count(*) FROM updated_{index})" for index in range(len(updates))]  # noqa: S608
    if not flush_wait:
        answers.append("set_config('synchronous_commit', 'off', true)")
    if not answers and not parts:
        return
    ctes = ", ".join(f"{name} AS ({sql})" for name, sql, _ in parts)
    params = [param for _, _, part_params in parts for param in part_params]
    with connection.cursor() as cursor:
        cursor.execute(f"WITH {ctes} SELECT {', '.join(answers) or 'NULL'}" if ctes else f"SELECT {answers[0]}", params)
        counts = cursor.fetchone()
    for ((model, _), rows), count in zip(updates.items(), counts, strict=False):
        if count != len(rows):
            raise DatabaseError(f"{len(rows) - count} of {len(rows)} {model.__name__} rows did not update.")
    for _, instances in inserts:  # saved now, as bulk_create would have left them
        for instance in instances:
            instance._state.adding, instance._state.db = False, connection.alias


def runs_insert(runs: Sequence[Run], steps: Sequence[StepRun], events: Sequence[RunEvent]) -> None:
    """Insert new runs with their steps and first events."""
    insert_rows((Run, runs), (StepRun, steps), (RunEvent, events))


def heartbeat_touch(step_id, attempt: int, now) -> bool:
    """Touch a running attempt's heartbeat (in a transaction of its own); False if it is no longer running."""
    running = StepRun.objects.filter(pk=step_id, attempt=attempt, status=StepRun.Status.RUNNING)
    return bool(running.update(heartbeat_at=now))


def claim_confirm(step_id, attempt: int, claimed_at, now) -> bool:
    """Whether the claim that set the step's heartbeat to `claimed_at` holds the step; if so, touch the
    heartbeat (in a transaction of its own). For a claim whose COMMIT got no answer: the connection was
    lost, before or after PostgreSQL committed it.

    An UPDATE, not a read: should the claim's transaction still be open on the lost connection, the
    UPDATE waits for its row lock and sees how it ended, where a read would see the step as before.
    """
    claimed = StepRun.objects.filter(
        pk=step_id, attempt=attempt, status=StepRun.Status.RUNNING, heartbeat_at=claimed_at
    )
    return bool(claimed.update(heartbeat_at=now))


def retrying_while_unreachable(write: Callable[[], T], *, within: timedelta, what: str) -> T:
    """Run `write` (whole transactions, not inside one), again after a pause whenever the database
    cannot be reached or broke off the transaction (DATABASE_UNREACHABLE), for up to `within`; after
    that the error escapes.

    For what must not be lost to a blip: a step's result, whose call was made and must not be
    made again because the worker that made it could not write it down.
    """
    deadline = time.monotonic() + within.total_seconds()
    pause = 0.25
    while True:
        try:
            return write()
        except DATABASE_UNREACHABLE as error:
            if time.monotonic() + pause > deadline:
                raise
            logger.warning("the database is unreachable; trying again", extra={"what": what, "error": str(error)})
            connection.close()  # the next attempt opens a new connection
            time.sleep(pause)
            pause = min(pause * 2, 2.0)


# --- other runs: concurrency slots, children ---------------------------------------------------


def busy_runs(run: Run) -> int:
    """How many other runs of the run's workflow hold a concurrency slot.

    The workflow's row lock makes two runs racing for the last slot take turns.
    """
    Workflow.objects.select_for_update(no_key=True).filter(pk=run.workflow_id).exists()
    return Run.objects.filter(workflow_id=run.workflow_id, status__in=ACTIVE_RUN).exclude(pk=run.pk).count()


def runs_paused_for(run: Run) -> bool:
    """Whether the runs of the run's workflow or of its whole workspace are paused (new ones held)."""
    pauses = RunsPause.objects.filter(workspace_id=run.workspace_id)
    return pauses.filter(Q(workflow__isnull=True) | Q(workflow_id=run.workflow_id)).exists()


def engine_draining() -> bool:
    """Whether the engine drains; outside a run's lock (which reads it as `run.draining`)."""
    return EngineDrain.objects.exists()


def open_step_counts() -> dict[str, int]:
    """How many steps run now, and how many wait queued or retrying in open runs (what a drain holds)."""
    counts = StepRun.objects.filter(status__in=(StepRun.Status.RUNNING, StepRun.Status.QUEUED, StepRun.Status.RETRYING))
    counts = counts.filter(run__status__in=ACTIVE_RUN).aggregate(
        running=Count("pk", filter=Q(status=StepRun.Status.RUNNING)),
        held=Count("pk", filter=~Q(status=StepRun.Status.RUNNING)),
    )
    return {"running": counts["running"], "held": counts["held"]}


def next_queued_run(workflow_id):
    """The id of the workflow's oldest run waiting for a concurrency slot, if any."""
    queued = Run.objects.filter(workflow_id=workflow_id, status=Run.Status.QUEUED).order_by("created_at")
    return queued.values_list("pk", flat=True).first()


def workflow_followed(workflow_id) -> bool:
    """Whether enabled event triggers follow the workflow (the run lock's query tells it for a locked run)."""
    return EventTrigger.objects.filter(source_workflow_id=workflow_id, enabled=True).exists()


def open_child_runs(step: StepRun) -> list:
    return list(step.child_runs.exclude(status__in=Run.FINISHED).values_list("pk", flat=True))


def finished_children(step: StepRun) -> list[dict]:
    """The step's finished child runs, in their order: what a loop or subworkflow node sees."""
    rows = (
        step.child_runs.filter(status__in=Run.FINISHED)
        .order_by("parent_index")
        .values_list("parent_index", "status", "output", "error")
    )
    return [
        {"index": index, "status": status, "output": output, "error": error} for index, status, output, error in rows
    ]


def has_child_runs(step: StepRun) -> bool:
    return step.child_runs.exists()


def finished_children_count(step: StepRun) -> int:
    return step.child_runs.filter(status__in=Run.FINISHED).count()


def child_workflow(workspace_id, reference: str) -> Workflow | None:
    """The workspace's live workflow with this id or, failing that, this slug."""
    workflows = Workflow.objects.filter(workspace_id=workspace_id, deleted_at__isnull=True)
    workflow_id = _uuid(reference)
    workflow = workflows.filter(pk=workflow_id).first() if workflow_id else None
    return workflow or workflows.filter(slug=reference).first()


def _uuid(value) -> uuid.UUID | None:
    """`value` as a UUID (ids arrive as text in messages), None if it is not one."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


# --- documents ---------------------------------------------------------------------------------


def document_insert(*, run: Run, step: StepRun, document: dict) -> Document:
    """Store a step's generated document as the next version for its (workflow, node key).

    Called in the transaction that records the step's success, so the document exists exactly when
    the step succeeded. `document["source_ids"]` are the documents the model was given as context.
    """
    previous = Document.objects.filter(run=run, node_key=step.node_key).order_by("-version").first()
    fields = {
        "workspace_id": run.workspace_id,
        "workflow_id": run.workflow_id,
        "run": run,
        "step": step,
        "node_key": step.node_key,
        "previous": previous,
        "title": (document.get("title") or step.node_key)[:1000],
        "content": document.get("content") or "",
        "format": document.get("format") or Document.Format.MARKDOWN,
        "provider": document.get("provider") or "template",
        "model": document.get("model") or "",
        "tokens_in": document.get("tokens_in") or 0,
        "tokens_out": document.get("tokens_out") or 0,
        "cost": Decimal(str(document.get("cost") or 0)),
        "latency_ms": document.get("latency_ms") or 0,
        "metadata": document.get("metadata") or {},
    }
    _lock_document_versions(workflow_id=run.workflow_id, node_key=step.node_key)
    versions = Document.objects.filter(workflow_id=run.workflow_id, node_key=step.node_key)
    version = (versions.aggregate(latest=Max("version"))["latest"] or 0) + 1
    created = Document.objects.create(version=version, **fields)
    created.sources.set(Document.objects.filter(workspace_id=run.workspace_id, pk__in=document.get("source_ids") or []))
    return created


def _lock_document_versions(*, workflow_id, node_key: str) -> None:
    """Take the lock that numbers the documents of (workflow, node key), until this transaction ends.

    Runs of one workflow finish the same node at once. Reading MAX(version) and retrying on the
    unique constraint does not converge: the read cannot see the other writers' uncommitted rows,
    so under a burst every writer collides again and again. Behind a lock per (workflow, node key),
    taken before the read, the read (a new snapshot under READ COMMITTED) sees every version
    committed so far, and the number is right the first time. An advisory lock needs no row to
    exist, leaves other nodes and workflows alone and is released with the transaction.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [DOCUMENT_VERSION_LOCK, f"{workflow_id}:{node_key}"]
        )
