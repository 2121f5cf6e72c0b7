"""The run state machine: the only code that changes Run and StepRun state.

PostgreSQL is the truth and the broker only a doorbell. Every change of a run's state happens in a
transaction holding that run's row lock, appends a RunEvent, and hands the event to
`workflows.events.publish` after commit. Messages (`execute_step(step_id, attempt)`) may be lost,
repeated or late: a step is claimed with a conditional update (queued → running for that attempt),
so a repeat does nothing, and a late result from a worker that lost its claim is dropped, because
`attempt` is the fencing token. `recover()` (a beat task) re-sends what a lost message or a dead
worker left behind.
"""

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import datetime, timedelta
from functools import lru_cache, partial
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.http import Http404
from django.utils import timezone

from config.gates import Gate
from workflows import events
from workflows.engine import cancellation, dispatch
from workflows.engine.dispatch import Dispatch
from workflows.engine.errors import PermanentError, StepError, TransientError
from workflows.engine.nodes.base import PROMPT_OVERRIDE, NodeResult, StepContext, Suspend
from workflows.engine.nodes.registry import NODE_TYPES
from workflows.engine.prepared import PreparedQuery, insert_rows, insert_together, save_fields, save_fields_many
from workflows.graph import topological_order
from workflows.models import EventTrigger, Run, RunEvent, StepRun, Workflow, WorkflowVersion

logger = logging.getLogger(__name__)


def _timing(name: str) -> timedelta:
    """One of the engine's DWC_*_SECONDS settings (settings, so that tests and operators can tune them)."""
    return timedelta(seconds=float(getattr(django_settings, name)))


INTERRUPTED = "Interrupted: the worker died during the call, which may or may not have been delivered."
WORKER_LOST = "The worker running this step stopped responding."
RUN_TIMED_OUT = "The run exceeded its timeout of {seconds} seconds."
STEP_TIMED_OUT = "The step exceeded its timeout of {seconds} seconds."
UPSTREAM_FAILED = "An upstream step did not succeed."
BRANCH_NOT_TAKEN = "The condition took the other branch."
CHILDREN_SEEN = "_children_seen"
# How long one transaction may go on running a chain's cheap steps before it hands the rest back.
INLINE_BUDGET_SECONDS = 2.0
# Node types whose steps start child runs (and see them in their context).
PARENT_TYPES = ("loop", "subworkflow")
RUN_FAILED_FAST = "Cancelled because another step failed (on_failure: fail_fast)."
STOPPED_WHILE_GENERATING = "The step was stopped (cancelled or timed out) while it generated."
# Streamed text is published at most this often per step: often enough to look live, rarely
# enough that a fast model does not turn into a transaction per token.
DELTA_INTERVAL_SECONDS = 0.05

Status = StepRun.Status
ACTIVE_STEP = (Status.QUEUED, Status.RUNNING, Status.RETRYING)


# --- events ------------------------------------------------------------------------------------


_batch = threading.local()


@contextmanager
def transition(*, one_statement: bool = False) -> Iterator[None]:
    """A transaction whose run events are written together just before it commits.

    Every event of a state change would otherwise cost an UPDATE of the run's counter and an INSERT;
    batched, a whole step transition costs one of each per run touched.

    `one_statement`: the transition writes with a single statement (runs_insert's, which writes
    the new runs' events too). Outside a transaction that statement is its own, so starting a run
    costs no BEGIN and COMMIT round trips, and what is sent on commit is sent once it returned.
    """
    single = one_statement and not connection.in_atomic_block
    with nullcontext() if single else transaction.atomic():
        outer = getattr(_batch, "runs", None)
        _batch.runs = {} if outer is None else outer
        try:
            yield
            if outer is None:
                _write_events(_batch.runs, one_statement=single)
        finally:
            if outer is None:
                _batch.runs = None


def _write_events(pending: dict, *, one_statement: bool = False) -> None:
    # runs_insert writes a new run's first events in the statement that inserts the run.
    unwritten = [event for _, run_events in pending.values() for event in run_events if not hasattr(event, "_written")]
    changed = [(run, fields) for run, _ in pending.values() if (fields := _unsaved_fields(run))]
    if one_statement and (unwritten or changed):
        # Outside a transaction, a second statement would commit apart from the first.
        raise RuntimeError("A one-statement transition has more to write.")
    insert_rows(RunEvent, unwritten)
    save_fields_many(changed)  # a batch of cheap steps finishes its runs with one UPDATE
    for run, _ in changed:
        run._stored_seq, run._dirty = run.event_seq, set()
    envelopes = [events.envelope(event, run) for run, run_events in pending.values() for event in run_events]
    transaction.on_commit(lambda: events.publish(envelopes))


def _unsaved_fields(run: Run) -> set[str]:
    fields = set(getattr(run, "_dirty", ()))
    if getattr(run, "_stored_seq", None) != run.event_seq:
        fields.add("event_seq")
    return fields


def _save_run(run: Run, *fields: str) -> None:
    """Save run fields; inside a transition, together with its event counter when the events are written."""
    pending = getattr(_batch, "runs", None)
    if pending is None:
        run.save(update_fields=list(fields))
        return
    run._dirty = {*getattr(run, "_dirty", ()), *fields}
    _register(pending, run)


def emit(run: Run, type_: str, *, step: str = "", data: dict | None = None) -> None:
    """Append an event to the run's log (the caller holds the run's row lock) and publish it on commit."""
    pending = getattr(_batch, "runs", None)
    if pending is not None:
        _register(pending, run)
    run.event_seq += 1
    event = RunEvent(run=run, seq=run.event_seq, type=type_, step=step, data=data or {}, created_at=timezone.now())
    if pending is None:
        _write_events({run.pk: (run, [event])})
    else:
        pending[run.pk][1].append(event)


def _register(pending: dict, run: Run) -> None:
    """Make `run` the instance whose events and fields this transition writes.

    Should another instance of the same run have been used earlier in the transaction, its pending
    fields are written now and its event count carried over, so that nothing is lost or numbered twice.
    """
    earlier = pending.get(run.pk)
    if earlier is None:
        pending[run.pk] = (run, [])
        return
    previous, run_events = earlier
    if previous is run:
        return
    dirty = getattr(previous, "_dirty", set())
    if dirty:
        save_fields(previous, dirty)
        previous._dirty = set()
    run.event_seq = max(run.event_seq, previous.event_seq)
    pending[run.pk] = (run, run_events)


def _dispatch_on_commit(dispatches: list[Dispatch]) -> None:
    if dispatches:
        transaction.on_commit(lambda: dispatch.send(dispatches))


# --- reading the pinned definition ------------------------------------------------------------


def _snapshot(run: Run) -> dict:
    return run.version.snapshot


def _nodes_by_key(run: Run) -> dict[str, dict]:
    return {node["key"]: node for node in _snapshot(run)["nodes"]}


def _parents(run: Run) -> dict[str, list[tuple[str, str]]]:
    parents: dict[str, list[tuple[str, str]]] = {node["key"]: [] for node in _snapshot(run)["nodes"]}
    for edge in _snapshot(run)["edges"]:
        parents[edge["target"]].append((edge["source"], edge["label"]))
    return parents


def _settings(run: Run) -> dict:
    return _snapshot(run)["settings"]


def _steps(run: Run) -> dict[str, StepRun]:
    """The run's steps by node key, loaded once per locked run instance (that is, per transaction).

    Every change to a step happens under its run's lock, so while this transaction holds it these
    instances are the truth; the scheduler changes them in place as it saves them.
    """
    cached = getattr(run, "_step_cache", None)
    if cached is None:
        cached = {step.node_key: step for step in _run_steps(run.pk)}
        run._step_cache = cached
    return cached


_run_steps = PreparedQuery(lambda run_id: StepRun.objects.filter(run_id=run_id).order_by())


def _run_with_lock(run_id, *, skip_locked: bool = False):
    return (
        Run.objects.select_for_update(no_key=True, skip_locked=skip_locked)
        .annotate(
            followed=Exists(EventTrigger.objects.filter(source_workflow_id=OuterRef("workflow_id"), enabled=True))
        )
        .filter(pk=run_id)
    )


_run_locked = PreparedQuery(_run_with_lock)
# For a transaction that already holds another run's lock: waiting for a second lock while holding
# one could deadlock with a transaction that takes the two the other way round.
_run_locked_if_free = PreparedQuery(partial(_run_with_lock, skip_locked=True))


def _step_by_id(run: Run, step_id) -> StepRun | None:
    return next((step for step in _steps(run).values() if str(step.pk) == str(step_id)), None)


def locked_run(run_id, *, wait: bool = True) -> Run:
    """The run, row-locked for this transaction: every change of its state happens under this lock.

    The run's row alone (its version comes from a per-process cache), with NO KEY UPDATE, so that
    inserts referencing it (steps, events, child runs) never wait on it. `followed` (whether event
    triggers follow its workflow) comes along so that finishing the run needs no query of its own.
    With `wait=False`, a run another transaction holds is reported as Run.DoesNotExist too.
    """
    run = next(iter((_run_locked if wait else _run_locked_if_free)(run_id)), None)
    if run is None:
        raise Run.DoesNotExist(f"No run {run_id}, or another transaction holds it.")
    run.version = _version(run.version_id)
    return run


@lru_cache(maxsize=512)
def _version(version_id) -> WorkflowVersion:
    # Versions never change once written: a worker parses each snapshot once, not per transaction.
    return WorkflowVersion.objects.get(pk=version_id)


# --- creating and advancing runs --------------------------------------------------------------


def runs_insert(runs: list[Run], *, gate: Gate | None = None) -> None:
    """Insert new runs of one version, with their steps, and start them (inside a transition).

    Without a concurrency limit a run starts in the transaction that creates it: it is inserted
    running, its root steps queued, and their messages go out on commit, so a run costs no
    advance_run round trip and a batch of runs a handful of statements. With a limit, advance_run
    decides, under locks. With a `gate` (see config.gates), they are inserted
    only when it is open; when it is closed nothing is written and GateClosed is raised.
    """
    if not runs:
        return
    snapshot = _snapshot(runs[0])
    targets = {edge["target"] for edge in snapshot["edges"]}
    root_keys = {node["key"] for node in snapshot["nodes"] if node["key"] not in targets}
    startable = bool(root_keys) and not snapshot["settings"].get("max_concurrency")
    now = timezone.now()
    timeout = snapshot["settings"].get("timeout")
    steps, dispatches = [], []
    for run in runs:
        emit(run, "run.created", data={"trigger": run.trigger, "version": run.version.number})
        if startable:
            run.status, run.started_at = Run.Status.RUNNING, now
            run.deadline_at = now + timedelta(seconds=timeout) if timeout else None
            emit(run, "run.started")
        for node in snapshot["nodes"]:
            step = StepRun(run=run, node_key=node["key"], node_type=node["type"])
            if startable and node["key"] in root_keys:
                node_type = NODE_TYPES[node["type"]]
                step.status, step.attempt, step.queued_at = Status.QUEUED, 1, now
                emit(run, "step.queued", step=node["key"], data={"attempt": 1})
                dispatches.append(
                    Dispatch(str(step.pk), 1, node_type.queue, inline=node_type.inline, run_id=str(run.pk))
                )
            steps.append(step)
        run._stored_seq = run.event_seq  # inserted with the run, not updated after it
    # One statement for the runs, their steps and the events so far: starting a run is one round trip.
    run_events = [event for run in runs for event in _batch.runs[run.pk][1]]
    insert_together([(Run, runs), (StepRun, steps), (RunEvent, run_events)], gate=gate)
    for event in run_events:
        event._written = True
    if startable:
        transaction.on_commit(lambda: dispatch.send(dispatches))
        if timeout:
            for run in runs:
                transaction.on_commit(lambda run=run: dispatch.send_run_deadline(run.pk, run.deadline_at))
    else:
        for run in runs:
            transaction.on_commit(lambda run_id=run.pk: dispatch.send_advance(run_id))


def advance(run_id, *, worker: str = "") -> list[Dispatch]:
    """Start the run if it may start, queue every step whose parents allow it, finish it when done.

    Like every entry point here, it returns the messages to send; the caller sends them after commit.
    Called by a worker (`worker` set), it runs a first cheap step itself (see `_run_inline_chain`).
    """
    try:
        with transition():
            try:
                run = locked_run(run_id)
            except Run.DoesNotExist:  # a late message for a run deleted since
                return []
            dispatches = _advance(run)
            return _run_inline_chain(run, dispatches, worker) if worker else dispatches
    except Exception:
        if not worker:
            raise
        # A cheap step run here failed unexpectedly and rolled the advance back with it. Advanced
        # without it, the step runs from its own message, where its error is recorded as its own.
        logger.exception("an inline step failed the advance; advancing without it", extra={"run": str(run_id)})
        return advance(run_id)


def _slot_free(run: Run) -> bool:
    limit = _settings(run).get("max_concurrency")
    if not limit:
        return True
    # The workflow row lock makes two runs racing for the last slot take turns.
    Workflow.objects.select_for_update(no_key=True).filter(pk=run.workflow_id).exists()
    busy = Run.objects.filter(workflow_id=run.workflow_id, status__in=[Run.Status.RUNNING, Run.Status.WAITING]).exclude(
        pk=run.pk
    )
    return busy.count() < limit


def _edge_satisfied(parent: StepRun, label: str) -> bool:
    if parent.status != Status.SUCCEEDED:
        return False
    if not label:
        return True
    result = (parent.output or {}).get("result") if isinstance(parent.output, dict) else None
    return label == ("true" if result else "false")


def _readiness(rule: str, parent_steps: list[tuple[StepRun, str]]) -> str | None:
    """ "ready", "skip" or None (not yet) for a pending step, by its trigger rule."""
    if not parent_steps:
        return "ready"
    finished = [step.is_finished for step, _ in parent_steps]
    satisfied = [_edge_satisfied(step, label) for step, label in parent_steps]
    if rule == "one_success":
        if any(satisfied):
            return "ready"
        return "skip" if all(finished) else None
    if not all(finished):
        return None
    if rule == "all_done":
        return "ready"
    return "ready" if all(satisfied) else "skip"


def _advance(run: Run) -> list[Dispatch]:
    if run.is_finished:
        return []
    if run.status in (Run.Status.PENDING, Run.Status.QUEUED):
        if not _slot_free(run):
            if run.status != Run.Status.QUEUED:
                run.status = Run.Status.QUEUED
                _save_run(run, "status")
            return []
        now = timezone.now()
        run.status = Run.Status.RUNNING
        run.started_at = run.started_at or now
        timeout = _settings(run).get("timeout")
        run.deadline_at = now + timedelta(seconds=timeout) if timeout else None
        _save_run(run, "status", "started_at", "deadline_at")
        emit(run, "run.started")
        if run.deadline_at:
            run_id, deadline = run.pk, run.deadline_at
            transaction.on_commit(lambda: dispatch.send_run_deadline(run_id, deadline))

    steps = _steps(run)
    nodes = _nodes_by_key(run)
    parents = _parents(run)
    dispatches = []
    changed = True
    while changed:  # a skip can make its children skippable in turn
        changed = False
        for key, step in steps.items():
            if step.status != Status.PENDING:
                continue
            verdict = _readiness(nodes[key]["trigger_rule"], [(steps[p], label) for p, label in parents[key]])
            if verdict == "ready":
                dispatches.append(_queue(run, step, nodes[key]))
                changed = True
            elif verdict == "skip":
                taken = [
                    steps[p].status == Status.SUCCEEDED and not _edge_satisfied(steps[p], label)
                    for p, label in parents[key]
                ]
                _finish_step(
                    run, step, Status.SKIPPED, error={"message": BRANCH_NOT_TAKEN if any(taken) else UPSTREAM_FAILED}
                )
                changed = True

    statuses = {step.status for step in steps.values()}
    if statuses <= set(StepRun.FINISHED):
        failed = [step.node_key for step in steps.values() if step.status == Status.FAILED]
        if failed:
            _finish_run(
                run, Run.Status.FAILED, error={"message": f"Steps failed: {', '.join(failed)}.", "steps": failed}
            )
        else:
            _finish_run(run, Run.Status.SUCCEEDED, output=_run_output(run, steps))
    elif statuses & set(ACTIVE_STEP):
        if run.status == Run.Status.WAITING:
            run.status = Run.Status.RUNNING
            _save_run(run, "status")
    elif Status.WAITING in statuses and run.status != Run.Status.WAITING:
        run.status = Run.Status.WAITING
        _save_run(run, "status")
        waiting = [step.node_key for step in steps.values() if step.status == Status.WAITING]
        emit(run, "run.waiting", data={"steps": waiting})
    return dispatches


def _queue(run: Run, step: StepRun, node: dict, *, countdown: float = 0) -> Dispatch:
    step.status = Status.QUEUED if not countdown else Status.RETRYING
    step.attempt += 1
    step.started_at = None
    step.queued_at = timezone.now()
    step.not_before = step.queued_at + timedelta(seconds=countdown) if countdown else None
    save_fields(step, ["status", "attempt", "queued_at", "not_before", "started_at"])
    if not countdown:
        emit(run, "step.queued", step=step.node_key, data={"attempt": step.attempt})
    node_type = NODE_TYPES[node["type"]]
    return Dispatch(
        str(step.pk), step.attempt, node_type.queue, countdown=countdown, inline=node_type.inline, run_id=str(run.pk)
    )


def _run_output(run: Run, steps: dict[str, StepRun]) -> dict:
    """The outputs of the run's last steps (those nothing depends on), by node key."""
    sources = {edge["source"] for edge in _snapshot(run)["edges"]}
    return {key: step.output for key, step in steps.items() if key not in sources and step.status == Status.SUCCEEDED}


def _finish_step(run: Run, step: StepRun, status: str, *, output: Any = None, error: dict | None = None) -> None:
    now = timezone.now()
    step.status = status
    step.finished_at = now
    if output is not None:
        step.output = output
    step.error = error
    if step.started_at:
        step.duration_ms = round((now - step.started_at).total_seconds() * 1000, 3)
    save_fields(
        step,
        [
            *("status", "finished_at", "output", "error", "duration_ms", "input", "usage", "state"),
            *("started_at", "heartbeat_at", "deadline_at", "worker"),
        ],
    )
    data: dict[str, Any] = {"attempt": step.attempt, "type": step.node_type}
    if status == Status.SUCCEEDED:
        data.update(output=events.bounded(output), duration_ms=step.duration_ms, usage=step.usage)
    elif error:
        data["error"] = error
    emit(run, f"step.{status}", step=step.node_key, data=data)


def _finish_run(run: Run, status: str, *, output: Any = None, error: dict | None = None) -> None:
    """Close the run; whatever is still open is cancelled. Frees a concurrency slot, wakes a parent."""
    now = timezone.now()
    for step in [step for step in _steps(run).values() if not step.is_finished]:
        _finish_step(
            run, step, Status.CANCELLED, error={"message": RUN_FAILED_FAST} if status == Run.Status.FAILED else None
        )
        _cancel_children(step)
    run.status = status
    run.finished_at = now
    run.output = output
    run.error = error
    _save_run(run, "status", "finished_at", "output", "error")
    duration = (now - run.started_at).total_seconds() if run.started_at else 0
    emit(run, f"run.{status}", data={"duration_seconds": round(duration, 3), "error": error, "trigger": run.trigger})
    if _settings(run).get("max_concurrency"):
        next_run = (
            Run.objects.filter(workflow_id=run.workflow_id, status=Run.Status.QUEUED).order_by("created_at").first()
        )
        if next_run is not None:
            transaction.on_commit(lambda: dispatch.send_advance(next_run.pk))
    if run.parent_step_id:
        parent_step_id = run.parent_step_id
        transaction.on_commit(lambda: dispatch.send_resume(parent_step_id))
    if run.followed:
        run_id = run.pk
        transaction.on_commit(lambda: dispatch.send_follow(run_id))


def _cancel_children(step: StepRun) -> None:
    for child in step.child_runs.exclude(status__in=Run.FINISHED).values_list("pk", flat=True):
        child_run = locked_run(child)
        if not child_run.is_finished:
            _finish_run(child_run, Run.Status.CANCELLED)


# --- executing a step -----------------------------------------------------------------------


def _claimable(step_id, run_id, attempt: int, *, wait: bool = True) -> tuple[Run, StepRun] | None:
    """Lock the step's run and return both if the step is queued for exactly this attempt.

    Repeated and stale messages stop here; the caller is inside a transaction.
    """
    try:
        run = locked_run(run_id, wait=wait)
    except Run.DoesNotExist:  # a late message for a run deleted since (or, not waiting, a held run)
        return None
    step = _step_by_id(run, step_id)
    if step is None:
        return None
    ready = step.status in (Status.QUEUED, Status.RETRYING) and step.attempt == attempt
    if not ready or run.status not in (Run.Status.RUNNING, Run.Status.WAITING):
        return None
    return run, step


def _start(run: Run, step: StepRun, attempt: int, worker: str, *, save: bool = True) -> None:
    """Mark the step running. An inline step (save=False) is written once, with its result.

    A new attempt with a timeout gets its deadline and, on commit, a message that checks it then
    (`time_out_step`): the step is stopped at its deadline whether it runs, hangs or waits.
    """
    now = timezone.now()
    timeout = _nodes_by_key(run)[step.node_key].get("timeout")
    step.status = Status.RUNNING
    # A resumed step (same attempt) keeps its start and its deadline: its duration includes the wait.
    fresh = step.started_at is None
    if fresh:
        step.started_at = now
        step.deadline_at = now + timedelta(seconds=timeout) if timeout else None
    step.heartbeat_at = now
    step.worker = worker[:200]
    if save:
        save_fields(step, ["status", "started_at", "heartbeat_at", "deadline_at", "worker"])
        if fresh and step.deadline_at:
            _dispatch_on_commit([_deadline_check(step, timeout)])
    if run.status == Run.Status.WAITING:
        run.status = Run.Status.RUNNING
        _save_run(run, "status")
    emit(run, "step.started", step=step.node_key, data={"attempt": attempt, "worker": step.worker})


def _context_data(run: Run, step: StepRun) -> dict:
    """Everything the node may see: succeeded outputs, run facts and finished children."""
    nodes = {}
    succeeded = [(key, other.output) for key, other in _steps(run).items() if other.status == Status.SUCCEEDED]
    for key, output in succeeded:
        entry = {"output": output}
        if isinstance(output, dict):
            entry.update(content=output.get("content"), title=output.get("title"))
        nodes[key] = entry
    children = (
        []
        if step.node_type not in PARENT_TYPES
        else [
            {"index": index, "status": status, "output": output, "error": error}
            for index, status, output, error in step.child_runs.filter(status__in=Run.FINISHED)
            .order_by("parent_index")
            .values_list("parent_index", "status", "output", "error")
        ]
    )
    snapshot = _snapshot(run)
    node_type = NODE_TYPES[step.node_type]
    return {
        "documents": _ancestor_documents(run, step) if node_type.uses_context else [],
        "expressions": {
            "input": run.input,
            "nodes": nodes,
            "run": {"id": str(run.pk), "trigger": run.trigger, "started_at": _iso(run.started_at)},
            "workflow": {"id": str(run.workflow_id), "name": snapshot["name"], "version": run.version.number},
        },
        "children": children,
        "node": _nodes_by_key(run)[step.node_key],
    }


def _ancestor_documents(run: Run, step: StepRun) -> list[dict]:
    """The documents (outputs with a content) of the step's succeeded ancestors, in chain order."""
    parents = _parents(run)
    ancestors, stack = set(), [step.node_key]
    while stack:
        for parent, _label in parents[stack.pop()]:
            if parent not in ancestors:
                ancestors.add(parent)
                stack.append(parent)
    snapshot = _snapshot(run)
    order = topological_order(
        [node["key"] for node in snapshot["nodes"]], [(edge["source"], edge["target"]) for edge in snapshot["edges"]]
    )
    documents = []
    for key in [key for key in order if key in ancestors]:
        ancestor = _steps(run)[key]
        output = ancestor.output if ancestor.status == Status.SUCCEEDED else None
        if isinstance(output, dict) and isinstance(output.get("content"), str):
            documents.append(
                {
                    "node_key": key,
                    "title": output.get("title") or key,
                    "content": output["content"],
                    "document_id": output.get("document_id"),
                }
            )
    return documents


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


class _Heartbeat:
    """Touches the step's heartbeat while it runs, so recover() can tell a slow step from a dead worker.

    A beat that finds the step no longer running as this attempt (cancelled, timed out, or taken
    over after a lost lease) stops the step's outbound calls (see `cancellation`) and beats no more.
    """

    def __init__(self, step_id, attempt: int):
        self.step_id, self.attempt = step_id, attempt
        self.stopped = threading.Event()
        self.cancel_scope = cancellation.CancelScope()
        self.thread = threading.Thread(target=self._beat, name=f"heartbeat-{step_id}", daemon=True)

    def _beat(self) -> None:
        from django.db import connection

        try:
            while not self.stopped.wait(_timing("DWC_HEARTBEAT_SECONDS").total_seconds()):
                still_mine = StepRun.objects.filter(
                    pk=self.step_id, attempt=self.attempt, status=Status.RUNNING
                ).update(heartbeat_at=timezone.now())
                if not still_mine and not self.stopped.is_set():
                    logger.info("stopping a step that is no longer running here", extra={"step": str(self.step_id)})
                    self.cancel_scope.cancel()
                    return
        finally:
            connection.close()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.stopped.set()


def execute_step(step_id, attempt: int, *, worker: str = "", run_id=None, chain: bool = True) -> list[Dispatch]:
    """Claim, run and record one attempt of a step; returns the messages to send next.

    A slow node runs between two transactions, its claim and its result, heart-beating meanwhile.
    A cheap inline node (transform, text, condition) runs inside the claim's transaction, followed
    by the cheap steps it makes ready when `chain` (see `_run_inline_chain`); a crash rolls it back
    to queued, and recover() re-sends it. Messages carry `run_id` to save a lookup.

    An unexpected error around the node (storing its result, say) fails the attempt with that
    error, retried as the node's retry policy says; left to escape, it would leave the step running
    until recover() mistook its silent heartbeat for a dead worker.
    """
    if run_id is None:
        run_id = StepRun.objects.filter(pk=step_id).values_list("run_id", flat=True).first()
        if run_id is None:
            return []
    try:
        with transition():
            claimed = _claimable(step_id, run_id, attempt)
            if claimed is None:
                return []
            run, step = claimed
            if NODE_TYPES[step.node_type].inline:
                _commit_without_flush_wait()
                dispatches = _execute_inline(run, step, attempt, worker)
                return _run_inline_chain(run, dispatches, worker) if chain else dispatches
            _start(run, step, attempt, worker)
            data = _context_data(run, step)
    except Exception as error:
        if chain:
            # Rolled back to queued. The error may be a later step's of the chain: this one runs
            # alone first, and an error then is its own.
            logger.warning("a step's transaction failed; running it alone", exc_info=True, extra={"step": step_id})
            return execute_step(step_id, attempt, worker=worker, run_id=run_id, chain=False)
        return _fail_unexpectedly(step_id, attempt, run_id, error)
    with _Heartbeat(step.pk, attempt) as heartbeat, cancellation.scope(heartbeat.cancel_scope):
        prepared, result = _run_node(run, step, data)
    try:
        with transition():
            run = locked_run(run.pk)
            step.refresh_from_db()
            if step.status != Status.RUNNING or step.attempt != attempt:
                logger.info(
                    "dropped a late result", extra={"run": str(run.pk), "step": step.node_key, "attempt": attempt}
                )
                return []
            return _record(run, step, data["node"], prepared, result, children_seen=len(data["children"]))
    except Exception as error:
        return _fail_unexpectedly(step_id, attempt, run_id, error)


def _fail_unexpectedly(step_id, attempt: int, run_id, error: Exception) -> list[Dispatch]:
    """Fail (or retry) an attempt whose transaction an unexpected error rolled back, with that error.

    The attempt is still the step's (queued, or running if its claim had committed). Should this
    transaction fail too (the database is gone), the error escapes and recover() takes over.
    """
    logger.error("a step's transaction failed", exc_info=error, extra={"run": str(run_id), "step": str(step_id)})
    with transition():
        try:
            run = locked_run(run_id)
        except Run.DoesNotExist:
            return []
        step = _step_by_id(run, step_id)
        if run.is_finished or step is None or step.attempt != attempt or step.status not in ACTIVE_STEP:
            return []
        node = _nodes_by_key(run)[step.node_key]
        return _fail_or_retry(run, step, node, _unexpected(error)) + _advance(run)


def _unexpected(error: Exception) -> TransientError:
    """A bug or an unexpected library error, as a step error: recorded as itself, retried as transient.

    Type and message only: workspace members read step errors, and a traceback shows the server's
    paths and code. The callers have logged it with its traceback.
    """
    return TransientError(f"{type(error).__name__}: {error}")


def execute_cheap_steps(steps: list[tuple[str, int, str]], *, worker: str) -> list[Dispatch]:
    """Run a batch of cheap steps, `(step_id, attempt, run_id)` each, in one transaction.

    The batch pays for one commit, one insert of events and one broadcast, instead of one of each per
    step. Only the first run's lock is waited for; a step whose run another transaction holds, and
    those left when the batch has run for INLINE_BUDGET_SECONDS, are run after it, each on its own.
    """
    deadline = time.monotonic() + INLINE_BUDGET_SECONDS
    dispatches, later = [], []
    try:
        with transition():
            _commit_without_flush_wait()
            for index, (step_id, attempt, run_id) in enumerate(steps):
                claimed = _claimable(step_id, run_id, attempt, wait=index == 0) if time.monotonic() < deadline else None
                if claimed is None or not NODE_TYPES[claimed[1].node_type].inline:
                    later.append((step_id, attempt, run_id))  # held, late or not claimable: its own transaction tells
                    continue
                run, step = claimed
                dispatches += _run_inline_chain(run, _execute_inline(run, step, attempt, worker), worker)
    except Exception:
        # One step's error (or a deadlock between two batches) rolled the whole batch back to queued.
        # Each step then runs in a transaction of its own, where an error is that step's alone.
        logger.warning("a batch of cheap steps failed; running them one by one", exc_info=True)
        dispatches, later = [], list(steps)
    for step_id, attempt, run_id in later:
        dispatches += execute_step(step_id, attempt, worker=worker, run_id=run_id)
    return dispatches


def _commit_without_flush_wait() -> None:
    """Let this transaction's COMMIT return before PostgreSQL has flushed it to disk.

    Only for a transaction that runs inline steps, which are pure: if PostgreSQL crashes before the
    flush (a fraction of a second), the transaction is lost whole, the step is queued again and
    recover() re-runs it to the same result. Nothing outside acted on it durably: the next
    transaction that does (the claim of a step that calls out, a started follow-up run) commits
    synchronously, and a synchronous commit flushes every earlier commit with it.
    """
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit TO OFF")


def _execute_inline(run: Run, step: StepRun, attempt: int, worker: str) -> list[Dispatch]:
    _start(run, step, attempt, worker, save=False)
    data = _context_data(run, step)
    prepared, result = _run_node(run, step, data)
    return _record(run, step, data["node"], prepared, result, children_seen=len(data["children"]))


def _run_inline_chain(run: Run, dispatches: list[Dispatch], worker: str) -> list[Dispatch]:
    """Run, in this transaction and under the run lock already held, each next step that is the only
    one made ready and is cheap (a chain of transforms), for up to INLINE_BUDGET_SECONDS.

    A chain then costs one transaction instead of one per step, and no broker round trips; if the
    worker dies, the whole transaction rolls back to the first step still queued, which recover()
    re-sends. Returns the messages left to send.
    """
    deadline = time.monotonic() + INLINE_BUDGET_SECONDS
    while time.monotonic() < deadline:
        inline, rest = dispatch.split_inline(dispatches)
        if inline is None:
            break
        step = _step_by_id(run, inline.step_id)
        if step is None or step.status != Status.QUEUED or step.attempt != inline.attempt:
            break
        dispatches = rest + _execute_inline(run, step, inline.attempt, worker)
    return dispatches


def _run_node(run: Run, step: StepRun, data: dict) -> tuple[dict | None, NodeResult | Suspend | StepError]:
    """Render the node's inputs and execute it; every failure comes back as a StepError."""
    node = data["node"]
    node_type = NODE_TYPES[node["type"]]
    # A resumed attempt has what is left of its time, not its whole timeout again.
    remaining = (step.deadline_at - timezone.now()).total_seconds() if step.deadline_at else None
    deadline = time.monotonic() + remaining if remaining is not None else None
    context = StepContext(
        run_id=str(run.pk),
        step_id=str(step.pk),
        node_key=step.node_key,
        attempt=step.attempt,
        workspace_id=str(run.workspace_id),
        expressions=data["expressions"],
        state=dict(step.state),
        children=data["children"],
        deadline=deadline,
        documents=data["documents"],
        stream=_DeltaStream(run.pk, step) if node_type.uses_context and not node_type.inline else None,
    )
    prepared: dict | None = None
    try:
        prepared = node_type.prepare(node, context)
        result: NodeResult | Suspend | StepError = node_type.execute(prepared, context)
        if context.stream is not None:
            context.stream.flush()
    except StepError as error:
        result = error
    except Exception as error:
        logger.exception("step raised", extra={"run": str(run.pk), "step": step.node_key})
        result = _unexpected(error)
    if deadline is not None and time.monotonic() > deadline and not isinstance(result, StepError):
        result = TransientError(STEP_TIMED_OUT.format(seconds=node.get("timeout")))
    return prepared, result


class _DeltaStream:
    """Publishes text a node streams as `step.delta` events, at most one every DELTA_INTERVAL_SECONDS.

    Each flush is a short transaction of its own under the run's lock, so the events keep their
    place in the run's sequence. A step that is no longer running this attempt (cancelled, timed
    out) stops the generation: the flush raises. After a restart (the provider retried), an event
    with `restart: true` tells watchers to drop the text they have.
    """

    def __init__(self, run_id, step: StepRun):
        self.run_id, self.step_id, self.node_key, self.attempt = run_id, step.pk, step.node_key, step.attempt
        self.pending: list[str] = []
        self.flushed_at = 0.0

    def write(self, text: str) -> None:
        self.pending.append(text)
        if time.monotonic() - self.flushed_at >= DELTA_INTERVAL_SECONDS:
            self.flush()

    def restart(self) -> None:
        self.pending = []
        self._publish({"attempt": self.attempt, "text": "", "restart": True})

    def flush(self) -> None:
        if self.pending:
            text, self.pending = "".join(self.pending), []
            self._publish({"attempt": self.attempt, "text": text})

    def _publish(self, data: dict) -> None:
        self.flushed_at = time.monotonic()
        with transition():
            run = locked_run(self.run_id)
            current = StepRun.objects.filter(pk=self.step_id).values_list("status", "attempt").first()
            if current != (Status.RUNNING, self.attempt):
                raise PermanentError(STOPPED_WHILE_GENERATING)
            emit(run, "step.delta", step=self.node_key, data=data)


def _record(
    run: Run, step: StepRun, node: dict, prepared: dict | None, result, *, children_seen: int
) -> list[Dispatch]:
    """Store an attempt's outcome (the run is locked and the step still held) and advance the run."""
    step.input = events.bounded(prepared) if prepared is not None else step.input
    dispatches: list[Dispatch] = []
    if isinstance(result, (NodeResult, Suspend)) and result.spawn:
        spawned = _spawn(run, step, result.spawn)
        if isinstance(spawned, StepError):
            result = spawned
        elif isinstance(result, NodeResult) and result.output is None:
            result.output = {"run_ids": [str(child.pk) for child in spawned]}
    if isinstance(result, NodeResult):
        step.usage = result.usage
        if result.document is not None:
            _record_document(run, step, result)
        _finish_step(run, step, Status.SUCCEEDED, output=result.output)
    elif isinstance(result, Suspend):
        dispatches += _suspend(run, step, result, children_seen=children_seen)
    else:
        dispatches += _fail_or_retry(run, step, node, result)
    return dispatches + _advance(run)


def _record_document(run: Run, step: StepRun, result: NodeResult) -> None:
    from workflows.services.documents import document_record

    document = document_record(run=run, step=step, document=result.document)
    result.output = {**(result.output or {}), "document_id": str(document.pk), "version": document.version}
    emit(
        run,
        "document.created",
        step=step.node_key,
        data={"document_id": str(document.pk), "version": document.version, "title": document.title},
    )


def _spawn(run: Run, step: StepRun, children: list) -> list[Run] | StepError:
    """Start a step's child runs, all or none; a missing workflow or bad input fails the step."""
    from workflows.services.runs import child_runs_start

    pending = getattr(_batch, "runs", None) or {}
    before = set(pending)
    try:
        with transaction.atomic():
            return child_runs_start(parent_run=run, parent_step=step, children=children)
    except (Http404, ValidationError) as error:
        for run_id in set(pending) - before:  # events of child runs the savepoint rolled back
            del pending[run_id]
        if isinstance(error, Http404):
            return PermanentError(str(error))
        return PermanentError(f"A child run's input was rejected: {error.message_dict}")


def _suspend(run: Run, step: StepRun, suspend: Suspend, *, children_seen: int) -> list[Dispatch]:
    step.status = Status.WAITING
    # How many finished children the node saw: recover() resumes the step if a wake-up got lost.
    step.state = {**suspend.state, CHILDREN_SEEN: children_seen}
    step.not_before = suspend.until
    step.save(update_fields=["status", "state", "not_before", "input"])
    emit(
        run,
        "step.waiting",
        step=step.node_key,
        data={"reason": suspend.reason, "until": _iso(suspend.until), "message": suspend.message},
    )
    dispatches = []
    finished_children = step.child_runs.filter(status__in=Run.FINISHED).count()
    if suspend.reason == "children" and finished_children > children_seen:
        # A child finished while the node was deciding: its wake-up found the step running.
        dispatches.append(_resume(run, step))
    elif suspend.until is not None:
        delay = (suspend.until - timezone.now()).total_seconds()
        dispatches.append(Dispatch(str(step.pk), step.attempt, "engine", countdown=max(delay, 0), task="resume_step"))
    return dispatches


def _resume(run: Run, step: StepRun) -> Dispatch:
    """waiting → queued for the same attempt: a resume continues the attempt, it is not a new one."""
    step.status = Status.QUEUED
    step.save(update_fields=["status"])
    return Dispatch(str(step.pk), step.attempt, NODE_TYPES[step.node_type].queue, run_id=str(run.pk))


def resume_step(step_id, attempt: int | None = None) -> list[Dispatch]:
    """Wake a waiting step: its time came, or one of its child runs finished."""
    with transition():
        step = StepRun.objects.filter(pk=step_id).only("run_id").first()
        if step is None:
            return []
        run = locked_run(step.run_id)
        step = StepRun.objects.get(pk=step_id)
        if step.status != Status.WAITING or (attempt is not None and step.attempt != attempt):
            return []
        if step.not_before and step.not_before > timezone.now() and not step.child_runs.exists():
            return []
        return [_resume(run, step)]


def _error_of(error: StepError, attempt: int) -> dict:
    return {"type": type(error).__name__, "message": error.message, "attempt": attempt, **error.details}


def _fail_or_retry(run: Run, step: StepRun, node: dict, error: StepError) -> list[Dispatch]:
    retry = node["retry"]
    if error.retryable and step.attempt < retry["max_attempts"]:
        backoff = retry["backoff_seconds"] * retry["backoff_factor"] ** (step.attempt - 1)
        step.error = _error_of(error, step.attempt)
        step.save(update_fields=["error", "input"])
        emit(
            run,
            "step.retrying",
            step=step.node_key,
            data={"attempt": step.attempt, "error": step.error, "retry_in_seconds": backoff},
        )
        return [_queue(run, step, node, countdown=backoff)]
    _finish_step(run, step, Status.FAILED, error=_error_of(error, step.attempt))
    if _settings(run).get("on_failure", "fail_fast") == "fail_fast":
        _finish_run(
            run,
            Run.Status.FAILED,
            error={"message": f"Step {step.node_key} failed: {error.message}", "step": step.node_key},
        )
    return []


# --- operations on runs and steps --------------------------------------------------------------


def cancel(run: Run) -> None:
    """Stop scheduling; every open step is cancelled and a late result from a running one is dropped."""
    _finish_run(run, Run.Status.CANCELLED)


def _reopen(run: Run, steps) -> None:
    """Put `steps` (a queryset of the run's) back to pending and the run to pending, to advance again."""
    steps.update(status=Status.PENDING, output=None, error=None, state={}, not_before=None, finished_at=None)
    run._step_cache = None  # the bulk update bypassed the cached instances
    run.status = Run.Status.PENDING
    run.finished_at = None
    run.error = None
    run.output = None
    _save_run(run, "status", "finished_at", "error", "output")


def retry(run: Run) -> list[Dispatch]:
    """Run again what failed, was cancelled or never ran; succeeded steps keep their outputs."""
    _reopen(run, run.steps.exclude(status=Status.SUCCEEDED))
    emit(run, "run.retried")
    return _advance(run)


def regenerate(run: Run, step: StepRun, *, prompt: str | None, cascade: bool) -> list[Dispatch]:
    """Run a finished run's document step again, for a new version; with `cascade`, its descendants too.

    The other steps keep their outputs. `prompt` replaces the node's prompt for this step only (kept
    in its state, where the document node looks for it).
    """
    keys = {step.node_key}
    if cascade:
        children: dict[str, list[str]] = {}
        for edge in _snapshot(run)["edges"]:
            children.setdefault(edge["source"], []).append(edge["target"])
        stack = [step.node_key]
        while stack:
            for child in children.get(stack.pop(), []):
                if child not in keys:
                    keys.add(child)
                    stack.append(child)
    _reopen(run, run.steps.filter(node_key__in=keys))
    if prompt is not None:
        StepRun.objects.filter(pk=step.pk).update(state={PROMPT_OVERRIDE: prompt})
    emit(run, "run.regenerating", step=step.node_key, data={"steps": sorted(keys), "cascade": cascade})
    return _advance(run)


def decide(run: Run, step: StepRun, *, approved: bool, by: str, comment: str) -> list[Dispatch]:
    """Settle a waiting approval step."""
    decision = {"approved": approved, "by": by, "comment": comment}
    step.state = {**step.state, "decision": decision}
    if approved:
        _finish_step(run, step, Status.SUCCEEDED, output=decision)
        return _advance(run)
    return _fail_or_retry(
        run,
        step,
        _nodes_by_key(run)[step.node_key],
        PermanentError(f"Rejected by {by}.", details={"decision": decision}),
    ) + _advance(run)


# --- deadlines -------------------------------------------------------------------------------
# A run's or an attempt's deadline is checked by a message sent, when it starts, to arrive at the
# deadline: it fires on time, where recover() (every DWC_RECOVER_EVERY_SECONDS) would fire late.
# recover() still sweeps, for a lost message. A check that comes early (another host's clock, or a
# deadline beyond MAX_COUNTDOWN_SECONDS, checked in hops) sends itself again for the rest.


def _deadline_check(step: StepRun, seconds: float) -> Dispatch:
    countdown = min(max(seconds, 0), dispatch.MAX_COUNTDOWN_SECONDS)
    return Dispatch(str(step.pk), step.attempt, "engine", countdown=countdown, task="time_out_step")


def time_out_run(run_id, deadline: str) -> None:
    """Fail the run if it is unfinished at its deadline. Idempotent.

    `deadline` (ISO 8601) is the deadline the message was sent for: a run retried since has a new
    one, with a message of its own, and this one does nothing.
    """
    with transition():
        try:
            run = locked_run(run_id)
        except Run.DoesNotExist:
            return
        if run.is_finished or run.deadline_at != datetime.fromisoformat(deadline):
            return
        if run.deadline_at > timezone.now():
            transaction.on_commit(lambda: dispatch.send_run_deadline(run_id, run.deadline_at))
            return
        _fail_timed_out_run(run)


def _fail_timed_out_run(run: Run) -> None:
    seconds = _settings(run).get("timeout")
    _finish_run(run, Run.Status.FAILED, error={"message": RUN_TIMED_OUT.format(seconds=seconds), "type": "timeout"})


def time_out_step(step_id, attempt: int) -> list[Dispatch]:
    """Fail (or retry) the attempt if it is still open at its deadline: running (a call that hangs),
    waiting (a delay, an approval, child runs, which are cancelled) or resumed and queued. Idempotent.

    A worker still running it notices at its next heartbeat, cuts its calls off, and its late
    result is dropped (`attempt` fences it).
    """
    with transition():
        run_id = StepRun.objects.filter(pk=step_id).values_list("run_id", flat=True).first()
        try:
            run = locked_run(run_id)
        except Run.DoesNotExist:  # a late message for a run deleted since
            return []
        step = _step_by_id(run, step_id)
        open_statuses = (Status.RUNNING, Status.WAITING, Status.QUEUED)
        if run.is_finished or step is None or step.attempt != attempt or step.status not in open_statuses:
            return []
        if step.deadline_at is None or step.started_at is None:  # queued, but not yet started
            return []
        remaining = (step.deadline_at - timezone.now()).total_seconds()
        if remaining > 0:
            return [_deadline_check(step, remaining)]
        node = _nodes_by_key(run)[step.node_key]
        _cancel_children(step)
        error = TransientError(STEP_TIMED_OUT.format(seconds=node.get("timeout")))
        return _fail_or_retry(run, step, node, error) + _advance(run)


# --- recovery --------------------------------------------------------------------------------


def recover(now: datetime | None = None) -> dict[str, int]:
    """Repair what lost messages and dead workers left behind. Safe to run anywhere, any time."""
    now = now or timezone.now()
    counts = {"lost_workers": 0, "lost_messages": 0, "timed_out_steps": 0, "due": 0, "timed_out_runs": 0, "runs": 0}

    stale = StepRun.objects.filter(status=Status.RUNNING, heartbeat_at__lt=now - _timing("DWC_STEP_LEASE_SECONDS"))
    for step_id, attempt in stale.values_list("pk", "attempt"):
        counts["lost_workers"] += _recover_lost_worker(step_id, attempt)

    # Past their deadline by more than a beat: their time_out_step message was lost.
    overdue = StepRun.objects.filter(
        status__in=[Status.RUNNING, Status.WAITING], deadline_at__lt=now - _timing("DWC_HEARTBEAT_SECONDS")
    )
    for step_id, attempt in overdue.values_list("pk", "attempt"):
        dispatch.send(time_out_step(step_id, attempt))
        counts["timed_out_steps"] += 1

    lost = StepRun.objects.filter(
        Q(status=Status.QUEUED, queued_at__lt=now - _timing("DWC_LOST_MESSAGE_SECONDS"))
        | Q(status=Status.RETRYING, not_before__lt=now - _timing("DWC_HEARTBEAT_SECONDS"))
    )
    dispatches = [
        Dispatch(str(pk), attempt, NODE_TYPES[node_type].queue, run_id=str(run_id))
        for pk, attempt, node_type, run_id in lost.values_list("pk", "attempt", "node_type", "run_id")
    ]
    counts["lost_messages"] = len(dispatches)
    due = StepRun.objects.filter(status=Status.WAITING, not_before__lte=now)
    dispatches += [
        Dispatch(str(pk), attempt, "engine", task="resume_step") for pk, attempt in due.values_list("pk", "attempt")
    ]
    counts["due"] = due.count()
    for step in StepRun.objects.filter(status=Status.WAITING, child_runs__isnull=False).distinct():
        finished = step.child_runs.filter(status__in=Run.FINISHED).count()
        if finished > step.state.get(CHILDREN_SEEN, 0):
            dispatches.append(Dispatch(str(step.pk), step.attempt, "engine", task="resume_step"))
            counts["due"] += 1
    dispatch.send(dispatches)

    late = Run.objects.filter(status__in=[Run.Status.RUNNING, Run.Status.WAITING], deadline_at__lt=now)
    for run_id in late.values_list("pk", flat=True):
        with transition():
            run = locked_run(run_id)
            if not run.is_finished and run.deadline_at and run.deadline_at < now:
                _fail_timed_out_run(run)
                counts["timed_out_runs"] += 1

    stuck = Run.objects.filter(
        Q(status=Run.Status.PENDING, created_at__lt=now - _timing("DWC_LOST_MESSAGE_SECONDS"))
        | Q(status=Run.Status.QUEUED)
    )
    for run_id in stuck.values_list("pk", flat=True):
        dispatch.send(advance(run_id))
        counts["runs"] += 1
    return counts


def _recover_lost_worker(step_id, attempt: int) -> int:
    with transition():
        step = StepRun.objects.filter(pk=step_id).only("run_id").first()
        if step is None:
            return 0
        run = locked_run(step.run_id)
        step = StepRun.objects.get(pk=step_id)
        if step.status != Status.RUNNING or step.attempt != attempt:
            return 0
        node = _nodes_by_key(run)[step.node_key]
        node_type = NODE_TYPES[node["type"]]
        if node_type.safe_to_rerun(node["config"]):
            error: StepError = TransientError(WORKER_LOST)
        else:
            error = PermanentError(INTERRUPTED)
        dispatches = _fail_or_retry(run, step, node, error) + _advance(run)
        _dispatch_on_commit(dispatches)
    return 1
