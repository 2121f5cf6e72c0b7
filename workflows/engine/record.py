"""Recording an attempt's outcome: success (with its document and child runs), a wait, or a failure.

Called under the run's lock, while the attempt still holds the step; advances the run after.
A waiting step is woken by `resume_step` when its time comes or a child run finishes.
"""

from django.utils import timezone

from workflows import events
from workflows.engine import children, dispatch, snapshot, state, store
from workflows.engine.attempt import iso
from workflows.engine.dispatch import Dispatch
from workflows.engine.errors import StepError
from workflows.engine.nodes.base import NodeResult, Suspend
from workflows.engine.nodes.registry import NODE_TYPES
from workflows.engine.transition import Transition, transition
from workflows.models import Run, StepRun

# Where a waiting parent step keeps how many finished children its node saw.
CHILDREN_SEEN = "_children_seen"

Status = StepRun.Status


def record(
    tx: Transition,
    run: Run,
    step: StepRun,
    prepared: dict | None,
    result: NodeResult | Suspend | StepError,
    *,
    children_seen: int,
) -> list[Dispatch]:
    """Store an attempt's outcome and advance the run; returns the messages to send."""
    if prepared is not None:
        step.input = events.bounded(prepared)
    if isinstance(result, (NodeResult, Suspend)) and result.spawn:
        spawned = children.spawn(tx, run, step, result.spawn)
        if isinstance(spawned, StepError):
            result = spawned
        elif isinstance(result, NodeResult) and result.output is None:
            result.output = {"run_ids": [str(child.pk) for child in spawned]}
    dispatches: list[Dispatch] = []
    if isinstance(result, NodeResult):
        step.usage = result.usage
        if result.document is not None:
            _record_document(tx, run, step, result)
        state.finish_step(tx, run, step, Status.SUCCEEDED, output=result.output)
    elif isinstance(result, Suspend):
        dispatches += _suspend(tx, run, step, result, children_seen=children_seen)
    else:
        dispatches += state.fail_or_retry(tx, run, step, snapshot.node(run, step.node_key), result)
    return dispatches + state.advance(tx, run)


def _record_document(tx: Transition, run: Run, step: StepRun, result: NodeResult) -> None:
    document = store.document_insert(run=run, step=step, document=result.document)
    result.output = {**(result.output or {}), "document_id": str(document.pk), "version": document.version}
    data = {"document_id": str(document.pk), "version": document.version, "title": document.title}
    tx.emit(run, "document.created", step=step.node_key, data=data)


def _suspend(tx: Transition, run: Run, step: StepRun, suspend: Suspend, *, children_seen: int) -> list[Dispatch]:
    step.status = Status.WAITING
    # How many finished children the node saw: recover() resumes the step if a wake-up got lost.
    step.state = {**suspend.state, CHILDREN_SEEN: children_seen}
    step.not_before = suspend.until
    tx.save_step(run, step, "status", "state", "not_before", "input")
    data = {"reason": suspend.reason, "until": iso(suspend.until), "message": suspend.message}
    tx.emit(run, "step.waiting", step=step.node_key, data=data)
    if suspend.reason == "children" and store.finished_children_count(step) > children_seen:
        # A child finished while the node was deciding: its wake-up found the step running.
        return [resume(tx, run, step)]
    if suspend.until is not None:
        delay = (suspend.until - timezone.now()).total_seconds()
        return [dispatch.wake_up(step.pk, step.attempt, countdown=max(delay, 0))]
    return []


def resume(tx: Transition, run: Run, step: StepRun) -> Dispatch:
    """waiting → queued for the same attempt: a resume continues the attempt, it is not a new one."""
    step.status = Status.QUEUED
    tx.save_step(run, step, "status")
    return Dispatch(str(step.pk), step.attempt, NODE_TYPES[step.node_type].queue, run_id=str(run.pk))


def resume_step(step_id, attempt: int | None = None) -> list[Dispatch]:
    """Wake a waiting step: its time came, or one of its child runs finished."""
    with transition() as tx:
        try:
            run = tx.lock(store.step_run_id(step_id))
        except Run.DoesNotExist:
            return []
        step = tx.step_by_id(run, step_id)
        if step is None or step.status != Status.WAITING or (attempt is not None and step.attempt != attempt):
            return []
        if step.not_before and step.not_before > timezone.now() and not store.has_child_runs(step):
            return []
        return [resume(tx, run, step)]
