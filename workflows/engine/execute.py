"""Executing steps: claim an attempt, run its node, record the outcome — what the worker tasks call.

PostgreSQL is the truth and the broker only a doorbell. Messages (`execute_step(step_id, attempt)`)
may be lost, repeated or late: a step is claimed under its run's lock only if it is queued for that
attempt, so a repeat does nothing, and a late result from a worker that lost its claim is dropped,
because `attempt` is the fencing token. `recovery.recover()` re-sends what a lost message or a dead
worker left behind. Each entry point returns the messages to send; the caller sends them.
"""

import copy
import logging
import time
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from workflows.engine import attempt as attempts
from workflows.engine import cancellation, dispatch, snapshot, state, store
from workflows.engine.deadlines import step_deadline_check
from workflows.engine.dispatch import Dispatch
from workflows.engine.liveness import Heartbeat, timing
from workflows.engine.nodes.registry import NODE_TYPES
from workflows.engine.record import record
from workflows.engine.transition import Transition, transition
from workflows.models import Run, StepRun

logger = logging.getLogger(__name__)

# How long one transaction may go on running a chain's cheap steps before it hands the rest back.
INLINE_BUDGET_SECONDS = 2.0

Status = StepRun.Status


def advance(run_id, *, worker: str = "") -> list[Dispatch]:
    """Start the run if it may start, queue every step whose parents allow it, finish it when done.

    Called by a worker (`worker` set), it runs a first cheap step itself (see `_run_inline_chain`).
    """
    try:
        with transition() as tx:
            try:
                run = tx.lock(run_id)
            except Run.DoesNotExist:  # a late message for a run deleted since
                return []
            dispatches = state.advance(tx, run)
            return _run_inline_chain(tx, run, dispatches, worker) if worker else dispatches
    except Exception:
        if not worker:
            raise
        # A cheap step run here failed unexpectedly and rolled the advance back with it. Advanced
        # without it, the step runs from its own message, where its error is recorded as its own.
        logger.exception("an inline step failed the advance; advancing without it", extra={"run": str(run_id)})
        return advance(run_id)


def _claim(tx: Transition, step_id, run_id, attempt: int) -> tuple[Run, StepRun] | None:
    """Lock the step's run and return both if the step is queued for exactly this attempt.

    Repeated and stale messages stop here.
    """
    try:
        run = tx.lock(run_id)
    except Run.DoesNotExist:  # a late message for a run deleted since
        return None
    step = tx.step_by_id(run, step_id)
    if step is None:
        return None
    ready = step.status in (Status.QUEUED, Status.RETRYING) and step.attempt == attempt
    # A paused run's steps, and every step while the engine drains, stay queued (see `pausing`).
    if not ready or run.draining or run.status not in (Run.Status.RUNNING, Run.Status.WAITING):
        return None
    return run, step


def _start(tx: Transition, run: Run, step: StepRun, worker: str, *, inline: bool) -> None:
    """Mark the step running.

    A new attempt with a timeout gets its deadline and, unless it runs inline (to its end in this
    transaction), a message that checks it then (`time_out_step`): the step is stopped at its
    deadline whether it runs, hangs or waits.
    """
    now = timezone.now()
    timeout = snapshot.node(run, step.node_key).get("timeout")
    step.status = Status.RUNNING
    # A resumed step (same attempt) keeps its start and its deadline: its duration includes the wait.
    fresh = step.started_at is None
    if fresh:
        step.started_at = now
        step.deadline_at = now + timedelta(seconds=timeout) if timeout else None
    step.heartbeat_at = now
    step.worker = worker[:200]
    tx.save_step(run, step, "status", "started_at", "heartbeat_at", "deadline_at", "worker")
    if fresh and step.deadline_at and not inline:
        deadline_check = step_deadline_check(step, timeout)
        transaction.on_commit(lambda: dispatch.send([deadline_check]))
    if run.status == Run.Status.WAITING:
        run.status = Run.Status.RUNNING
        tx.save(run, "status")
    data = {"attempt": step.attempt, "worker": step.worker, "queue": NODE_TYPES[step.node_type].queue}
    if fresh and step.queued_at:
        # How long it waited for a worker (a retry's wait counts from when it came due).
        data["queue_wait_ms"] = round(max((now - (step.not_before or step.queued_at)).total_seconds(), 0) * 1000, 3)
    tx.emit(run, "step.started", step=step.node_key, data=data)


def execute_step(step_id, attempt: int, *, worker: str = "", run_id=None, chain: bool = True) -> list[Dispatch]:
    """Claim, run and record one attempt of a step; returns the messages to send next.

    A slow node runs between two transactions, its claim and its result, heart-beating meanwhile.
    A cheap inline node (transform, text, condition) runs inside the claim's transaction, followed
    by the cheap steps it makes ready when `chain` (see `_run_inline_chain`); a crash rolls it back
    to queued, and recover() re-sends it. Messages carry `run_id` to save a lookup.

    An unexpected error around the node (storing its result, say) fails the attempt with that
    error, retried as the node's retry policy says; left to escape, it would leave the step running
    until recover() mistook its silent heartbeat for a dead worker. The database being unreachable is
    not the step's error: before the claim committed it escapes (the step stays queued, recover()
    re-sends it); after, the result is written once the database is back. A claim whose COMMIT lost
    its connection may have committed all the same: the worker asks (`_claim_held`) and, if it did,
    runs the step, which no one else will run before its lease runs out.
    """
    if run_id is None:
        run_id = store.step_run_id(step_id)
        if run_id is None:
            return []
    claimed_at = None
    try:
        with transition() as tx:
            claimed = _claim(tx, step_id, run_id, attempt)
            if claimed is None:
                return []
            run, step = claimed
            if NODE_TYPES[step.node_type].inline:
                tx.commit_without_flush_wait()
                dispatches = _execute_inline(tx, run, step, worker)
                return _run_inline_chain(tx, run, dispatches, worker) if chain else dispatches
            _start(tx, run, step, worker, inline=False)
            data = attempts.context_data(tx, run, step)
            claimed_at = step.heartbeat_at  # what tells this claim from another of the same attempt
    except Exception as error:
        if claimed_at is not None and _claim_held(step_id, attempt, claimed_at):
            logger.warning(
                "a claim's commit failed, yet it committed: the step runs", exc_info=True, extra={"step": step_id}
            )
        elif chain:
            # Rolled back to queued. The error may be a later step's of the chain: this one runs
            # alone first, and an error then is its own.
            logger.warning("a step's transaction failed; running it alone", exc_info=True, extra={"step": step_id})
            return execute_step(step_id, attempt, worker=worker, run_id=run_id, chain=False)
        else:
            return _fail_unexpectedly(step_id, attempt, run_id, error)
    with Heartbeat(step.pk, attempt) as heartbeat, cancellation.scope(heartbeat.cancel_scope):
        prepared, result = attempts.run_node(run, step, data)
        # Recorded while the heartbeat beats: should the database be unreachable now, the worker keeps
        # its lease and tries again until it is back, rather than leave a call it made to look lost.
        return store.retrying_while_unreachable(
            lambda: _record_late(step_id, attempt, run_id, prepared, result, children_seen=len(data["children"])),
            within=timing("DWC_RECORD_RETRY_SECONDS"),
            what=f"the result of step {step_id}",
        )


def _claim_held(step_id, attempt: int, claimed_at) -> bool:
    """Whether a claim whose transaction failed once its work was done (at its COMMIT, the connection
    lost) committed after all: asked once the database answers, for up to DWC_RECORD_RETRY_SECONDS.

    Left running by a claim that did commit, the step would wait for its lease to run out, and
    recover() would then fail a call that was never made as interrupted. What the claim's commit would
    have set off does not happen (its events' broadcast, its deadline's message): recover() sends the
    message of a step past its deadline.
    """
    return store.retrying_while_unreachable(
        lambda: store.claim_confirm(step_id, attempt, claimed_at, timezone.now()),
        within=timing("DWC_RECORD_RETRY_SECONDS"),
        what=f"the claim of step {step_id}",
    )


def _record_late(step_id, attempt: int, run_id, prepared, result, *, children_seen: int) -> list[Dispatch]:
    """Record a slow node's outcome in a transaction of its own, unless the attempt lost the step.

    An unexpected error fails the attempt with that error; the database being unreachable escapes,
    for the caller to try again (with a fresh copy of the result: recording changes it).
    """
    try:
        return _record_result(step_id, attempt, run_id, prepared, copy.deepcopy(result), children_seen=children_seen)
    except Exception as error:
        return _fail_unexpectedly(step_id, attempt, run_id, error)


def _record_result(step_id, attempt: int, run_id, prepared, result, *, children_seen: int) -> list[Dispatch]:
    with transition() as tx:
        run = tx.lock(run_id)
        step = tx.step_by_id(run, step_id)
        if step is None or step.status != Status.RUNNING or step.attempt != attempt:
            node_key = step.node_key if step else str(step_id)
            logger.info("dropped a late result", extra={"run": str(run.pk), "step": node_key, "attempt": attempt})
            return []
        return record(tx, run, step, prepared, result, children_seen=children_seen)


def _fail_unexpectedly(step_id, attempt: int, run_id, error: Exception) -> list[Dispatch]:
    """Fail (or retry) an attempt whose transaction an unexpected error rolled back, with that error.

    The attempt is still the step's (queued, or running if its claim had committed). The database
    being unreachable is not the step's error: it escapes, so that a claim stays queued for recover()
    to re-send and a result is written again (`store.retrying_while_unreachable`). Should this
    transaction fail too, the error escapes as well and recover() takes over.
    """
    if isinstance(error, store.DATABASE_UNREACHABLE):
        raise error
    logger.error("a step's transaction failed", exc_info=error, extra={"run": str(run_id), "step": str(step_id)})
    with transition() as tx:
        try:
            run = tx.lock(run_id)
        except Run.DoesNotExist:
            return []
        step = tx.step_by_id(run, step_id)
        if run.is_finished or step is None or step.attempt != attempt or step.status not in state.ACTIVE_STEP:
            return []
        node = snapshot.node(run, step.node_key)
        return state.fail_or_retry(tx, run, step, node, attempts.unexpected(error)) + state.advance(tx, run)


def execute_cheap_steps(steps: list[tuple[str, int, str]], *, worker: str) -> list[Dispatch]:
    """Run a batch of cheap steps, `(step_id, attempt, run_id)` each, in one transaction.

    The batch pays for one commit, one write and one broadcast, instead of one of each per step, and
    reads its runs and their steps in two queries. No run's lock is waited for: waiting for a second
    while holding one could deadlock with another batch. A step whose run another transaction holds,
    and those left when the batch has run for INLINE_BUDGET_SECONDS, are run after it, each on its own.
    """
    deadline = time.monotonic() + INLINE_BUDGET_SECONDS
    dispatches, later = [], []
    try:
        with transition() as tx:
            tx.commit_without_flush_wait()
            tx.lock_free([run_id for _, _, run_id in steps])
            for step_id, attempt, run_id in steps:
                in_time = time.monotonic() < deadline
                claimed = _claim(tx, step_id, run_id, attempt) if in_time and tx.holds(run_id) else None
                if claimed is None or not NODE_TYPES[claimed[1].node_type].inline:
                    later.append((step_id, attempt, run_id))  # held, late or not claimable: its own transaction tells
                    continue
                run, step = claimed
                dispatches += _run_inline_chain(tx, run, _execute_inline(tx, run, step, worker), worker)
    except Exception:
        # One step's error (or a deadlock between two batches) rolled the whole batch back to queued.
        # Each step then runs in a transaction of its own, where an error is that step's alone.
        logger.warning("a batch of cheap steps failed; running them one by one", exc_info=True)
        dispatches, later = [], list(steps)
    for step_id, attempt, run_id in later:
        try:
            dispatches += execute_step(step_id, attempt, worker=worker, run_id=run_id)
        except store.DATABASE_UNREACHABLE:  # left queued for recover(); the others' messages still go
            logger.warning("the database was unreachable; a cheap step stays queued", extra={"step": step_id})
    return dispatches


def _execute_inline(tx: Transition, run: Run, step: StepRun, worker: str) -> list[Dispatch]:
    _start(tx, run, step, worker, inline=True)
    data = attempts.context_data(tx, run, step)
    prepared, result = attempts.run_node(run, step, data)
    return record(tx, run, step, prepared, result, children_seen=len(data["children"]))


def _run_inline_chain(tx: Transition, run: Run, dispatches: list[Dispatch], worker: str) -> list[Dispatch]:
    """Run, in this transaction and under the run lock already held, each next step that is the only
    one made ready and is cheap (a chain of transforms), for up to INLINE_BUDGET_SECONDS.

    A chain then costs one transaction instead of one per step, and no broker round trips; if the
    worker dies, the whole transaction rolls back to the first step still queued, which recover()
    re-sends. Returns the messages left to send.
    """
    deadline = time.monotonic() + INLINE_BUDGET_SECONDS
    while time.monotonic() < deadline and not run.draining:
        inline, rest = dispatch.split_inline(dispatches)
        if inline is None:
            break
        step = tx.step_by_id(run, inline.step_id)
        if step is None or step.status != Status.QUEUED or step.attempt != inline.attempt:
            break
        dispatches = rest + _execute_inline(tx, run, step, worker)
    return dispatches
