"""The run state machine's rules: which steps are ready, how steps and runs finish, when to retry.

Every function takes the transition that holds the run (see `transition`) and returns the messages
to send once it committed (`Dispatch`); the caller sends them. Nothing here runs a node.
"""

import math
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from workflows import events
from workflows.engine import dispatch, snapshot, store
from workflows.engine.dispatch import Dispatch
from workflows.engine.errors import StepError, TransientError
from workflows.engine.nodes.registry import NODE_TYPES
from workflows.engine.transition import Transition
from workflows.models import Run, StepRun

UPSTREAM_FAILED = "An upstream step did not succeed."
BRANCH_NOT_TAKEN = "The condition took the other branch."
RUN_FAILED_FAST = "Cancelled because another step failed (on_failure: fail_fast)."

Status = StepRun.Status
ACTIVE_STEP = (Status.QUEUED, Status.RUNNING, Status.RETRYING)
# What finishing a step may have changed on it, written together.
FINISHED_STEP_FIELDS = (
    *("status", "finished_at", "output", "error", "duration_ms", "input", "usage", "state"),
    *("started_at", "heartbeat_at", "deadline_at", "worker"),
)


# --- readiness -------------------------------------------------------------------------------


def edge_satisfied(parent: StepRun, label: str) -> bool:
    if parent.status != Status.SUCCEEDED:
        return False
    if not label:
        return True
    result = (parent.output or {}).get("result") if isinstance(parent.output, dict) else None
    return label == ("true" if result else "false")


def readiness(rule: str, parent_steps: list[tuple[StepRun, str]]) -> str | None:
    """ "ready", "skip" or None (not yet) for a pending step, by its trigger rule."""
    if not parent_steps:
        return "ready"
    finished = [step.is_finished for step, _ in parent_steps]
    satisfied = [edge_satisfied(step, label) for step, label in parent_steps]
    if rule == "one_success":
        if any(satisfied):
            return "ready"
        return "skip" if all(finished) else None
    if not all(finished):
        return None
    if rule == "all_done":
        return "ready"
    return "ready" if all(satisfied) else "skip"


# --- advancing a run ---------------------------------------------------------------------------


def advance(tx: Transition, run: Run) -> list[Dispatch]:
    """Start the run if it may start, queue every step whose parents allow it, finish it when done."""
    if run.is_finished:
        return []
    if run.status == Run.Status.PAUSED:
        # A paused run starts nothing (see `pausing`); it finishes if its last running steps did.
        if all(step.is_finished for step in tx.steps(run).values()):
            _settle(tx, run)
        return []
    if run.status in (Run.Status.PENDING, Run.Status.QUEUED) and not _start_run(tx, run):
        return []
    dispatches = _queue_ready(tx, run)
    _settle(tx, run)
    return dispatches


def _start_run(tx: Transition, run: Run) -> bool:
    """Take a concurrency slot and mark the run running; False (and queued) when there is none, or
    while its workflow's or workspace's runs are paused (it was accepted, and starts on their resume)."""
    limit = snapshot.settings(run).get("max_concurrency")
    if store.runs_paused_for(run) or (limit and store.busy_runs(run) >= limit):
        if run.status != Run.Status.QUEUED:
            run.status = Run.Status.QUEUED
            tx.save(run, "status")
        return False
    now = timezone.now()
    run.status = Run.Status.RUNNING
    run.started_at = run.started_at or now
    timeout = snapshot.settings(run).get("timeout")
    run.deadline_at = now + timedelta(seconds=timeout) if timeout else None
    tx.save(run, "status", "started_at", "deadline_at")
    tx.emit(run, "run.started")
    if run.deadline_at:
        run_id, deadline = run.pk, run.deadline_at
        transaction.on_commit(lambda: dispatch.send_run_deadline(run_id, deadline))
    return True


def _queue_ready(tx: Transition, run: Run) -> list[Dispatch]:
    """Queue the pending steps whose parents allow it and skip those whose parents rule them out."""
    steps, nodes, parents = tx.steps(run), snapshot.nodes_by_key(run), snapshot.parents(run)
    dispatches = []
    changed = True
    while changed:  # a skip can make its children skippable in turn
        changed = False
        for key, step in steps.items():
            if step.status != Status.PENDING:
                continue
            verdict = readiness(nodes[key]["trigger_rule"], [(steps[p], label) for p, label in parents[key]])
            if verdict == "ready":
                dispatches.append(queue(tx, run, step, nodes[key]))
            elif verdict == "skip":
                taken = [
                    steps[p].status == Status.SUCCEEDED and not edge_satisfied(steps[p], label)
                    for p, label in parents[key]
                ]
                message = BRANCH_NOT_TAKEN if any(taken) else UPSTREAM_FAILED
                finish_step(tx, run, step, Status.SKIPPED, error={"message": message})
            changed = changed or verdict is not None
    return dispatches


def _settle(tx: Transition, run: Run) -> None:
    """Finish the run when every step has, or mark it waiting or running as its steps are."""
    steps = tx.steps(run)
    statuses = {step.status for step in steps.values()}
    if statuses <= set(StepRun.FINISHED):
        failed = [step.node_key for step in steps.values() if step.status == Status.FAILED]
        if failed:
            error = {"message": f"Steps failed: {', '.join(failed)}.", "steps": failed}
            finish_run(tx, run, Run.Status.FAILED, error=error)
        else:
            finish_run(tx, run, Run.Status.SUCCEEDED, output=_run_output(run, steps))
    elif statuses & set(ACTIVE_STEP):
        if run.status == Run.Status.WAITING:
            run.status = Run.Status.RUNNING
            tx.save(run, "status")
    elif Status.WAITING in statuses and run.status != Run.Status.WAITING:
        run.status = Run.Status.WAITING
        tx.save(run, "status")
        waiting = [step.node_key for step in steps.values() if step.status == Status.WAITING]
        tx.emit(run, "run.waiting", data={"steps": waiting})


def _run_output(run: Run, steps: dict[str, StepRun]) -> dict:
    """The outputs of the run's last steps (those nothing depends on), by node key."""
    leaves = snapshot.leaves(run)
    return {key: step.output for key, step in steps.items() if key in leaves and step.status == Status.SUCCEEDED}


def queue(tx: Transition, run: Run, step: StepRun, node: dict, *, countdown: float = 0) -> Dispatch:
    """A new attempt of the step: queued now, or retrying after `countdown` seconds."""
    step.status = Status.QUEUED if not countdown else Status.RETRYING
    step.attempt += 1
    step.started_at = None
    step.queued_at = timezone.now()
    step.not_before = step.queued_at + timedelta(seconds=countdown) if countdown else None
    tx.save_step(run, step, "status", "attempt", "queued_at", "not_before", "started_at")
    if not countdown:
        tx.emit(run, "step.queued", step=step.node_key, data={"attempt": step.attempt})
    node_type = NODE_TYPES[node["type"]]
    return Dispatch(
        str(step.pk), step.attempt, node_type.queue, countdown=countdown, inline=node_type.inline, run_id=str(run.pk)
    )


# --- finishing ---------------------------------------------------------------------------------


def finish_step(
    tx: Transition, run: Run, step: StepRun, status: str, *, output: Any = None, error: dict | None = None
) -> None:
    now = timezone.now()
    step.status = status
    step.finished_at = now
    if output is not None:
        step.output = output
    step.error = error
    if step.started_at:
        step.duration_ms = round((now - step.started_at).total_seconds() * 1000, 3)
    tx.save_step(run, step, *FINISHED_STEP_FIELDS)
    data: dict[str, Any] = {"attempt": step.attempt, "type": step.node_type}
    if step.started_at:
        data["duration_ms"] = step.duration_ms
    if status == Status.SUCCEEDED:
        data.update(output=events.bounded(output), usage=step.usage)
    elif error:
        data["error"] = error
    tx.emit(run, f"step.{status}", step=step.node_key, data=data)


def finish_run(tx: Transition, run: Run, status: str, *, output: Any = None, error: dict | None = None) -> None:
    """Close the run; whatever is still open is cancelled. Frees a concurrency slot, wakes a parent."""
    now = timezone.now()
    for step in [step for step in tx.steps(run).values() if not step.is_finished]:
        reason = {"message": RUN_FAILED_FAST} if status == Run.Status.FAILED else None
        finish_step(tx, run, step, Status.CANCELLED, error=reason)
        cancel_children(tx, step)
    run.status = status
    run.finished_at = now
    run.output = output
    run.error = error
    tx.save(run, "status", "finished_at", "output", "error")
    duration = (now - run.started_at).total_seconds() if run.started_at else 0
    data = {"duration_seconds": round(duration, 3), "error": error, "trigger": run.trigger}
    tx.emit(run, f"run.{status}", data=data)
    _after_finish(run)


def _after_finish(run: Run) -> None:
    """On commit: start a run queued for the freed slot, wake the parent step, fire event triggers."""
    if snapshot.settings(run).get("max_concurrency"):
        next_run = store.next_queued_run(run.workflow_id)
        if next_run is not None:
            transaction.on_commit(lambda: dispatch.send_advance(next_run))
    if run.parent_step_id:
        parent_step_id = run.parent_step_id
        transaction.on_commit(lambda: dispatch.send_resume(parent_step_id))
    # `followed` comes with the run lock's query; a run created in this transition has to ask.
    followed = getattr(run, "followed", None)
    if followed or (followed is None and store.workflow_followed(run.workflow_id)):
        run_id = run.pk
        transaction.on_commit(lambda: dispatch.send_follow(run_id))


def cancel_children(tx: Transition, step: StepRun) -> None:
    """Cancel the step's unfinished child runs (a loop or subworkflow stopped)."""
    for child_id in store.open_child_runs(step):
        child = tx.lock(child_id)
        if not child.is_finished:
            finish_run(tx, child, Run.Status.CANCELLED)


# --- failures ----------------------------------------------------------------------------------


def error_of(error: StepError, attempt: int) -> dict:
    """The step's error as recorded: its type (the class's name, or the name it gives itself), message,
    attempt and details."""
    kind = getattr(error, "type_name", None) or type(error).__name__
    return {"type": kind, "message": error.message, "attempt": attempt, **error.details}


def fail_or_retry(tx: Transition, run: Run, step: StepRun, node: dict, error: StepError) -> list[Dispatch]:
    """Retry the step after its backoff if its policy allows; else fail it, and the run if fail_fast."""
    retry = node["retry"]
    tried = step.attempt - step.crashes  # attempts a lost worker ended are not the step's failures
    if error.retryable and tried < retry["max_attempts"]:
        delay, asked = retry_delay(retry, tried, error)
        step.error = {**error_of(error, step.attempt), **asked}
        tx.save_step(run, step, "error", "input")
        data = {
            "attempt": step.attempt,
            "type": step.node_type,
            "error": step.error,
            "retry_in_seconds": delay,
            **asked,
        }
        tx.emit(run, "step.retrying", step=step.node_key, data=data)
        return [queue(tx, run, step, node, countdown=delay)]
    finish_step(tx, run, step, Status.FAILED, error=error_of(error, step.attempt))
    if snapshot.settings(run).get("on_failure", "fail_fast") == "fail_fast":
        message = f"Step {step.node_key} failed: {error.message}"
        finish_run(tx, run, Run.Status.FAILED, error={"message": message, "step": step.node_key})
    return []


def retry_delay(retry: dict, tried: int, error: StepError) -> tuple[float, dict]:
    """Seconds until the next attempt, and what the other side asked for ({} if it said nothing usable).

    The step's backoff, or the server's Retry-After when that is longer, but never more than
    DWC_RETRY_AFTER_MAX_SECONDS: a server asking for a day neither holds the step a day nor makes it
    give up; it is tried again at the cap (`capped: true`). A Retry-After of 0 (a date already past)
    leaves the backoff as it is.
    """
    backoff = retry["backoff_seconds"] * retry["backoff_factor"] ** (tried - 1)
    asked = error.retry_after if isinstance(error, TransientError) else None
    if asked is None or not math.isfinite(asked) or asked <= 0:
        return backoff, {}
    cap = settings.DWC_RETRY_AFTER_MAX_SECONDS
    return max(backoff, min(asked, cap)), {"retry_after": asked, "capped": asked > cap}


def requeue_after_crash(tx: Transition, run: Run, step: StepRun, node: dict, error: StepError) -> list[Dispatch]:
    """A new attempt, at once, for a step safe to run again whose worker was lost: not a retry."""
    step.crashes += 1
    step.error = error_of(error, step.attempt)
    tx.save_step(run, step, "crashes", "error")
    data = {
        "attempt": step.attempt,
        "type": step.node_type,
        "error": step.error,
        "retry_in_seconds": 0,
        "crashes": step.crashes,
    }
    tx.emit(run, "step.retrying", step=step.node_key, data=data)
    return [queue(tx, run, step, node)]
