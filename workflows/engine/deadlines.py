"""Run and step timeouts.

A run's or an attempt's deadline is checked by a message sent, when it starts, to arrive at the
deadline: it fires on time, where recover() (every DWC_RECOVER_EVERY_SECONDS) would fire late.
recover() still sweeps, for a lost message. A check that comes early (another host's clock, or a
deadline beyond MAX_COUNTDOWN_SECONDS, checked in hops) sends itself again for the rest.
"""

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from workflows.engine import dispatch, snapshot, state, store
from workflows.engine.dispatch import Dispatch
from workflows.engine.errors import TransientError
from workflows.engine.transition import Transition, transition
from workflows.models import Run, StepRun

RUN_TIMED_OUT = "The run exceeded its timeout of {seconds} seconds."
STEP_TIMED_OUT = "The step exceeded its timeout of {seconds} seconds."

Status = StepRun.Status


def step_deadline_check(step: StepRun, seconds: float) -> Dispatch:
    """The message that checks the step's attempt `seconds` from now (`time_out_step`)."""
    countdown = min(max(seconds, 0), dispatch.MAX_COUNTDOWN_SECONDS)
    return Dispatch(str(step.pk), step.attempt, dispatch.CONTROL_QUEUE, countdown=countdown, task="time_out_step")


def time_out_run(run_id, deadline: str) -> None:
    """Fail the run if it is unfinished at its deadline. Idempotent.

    `deadline` (ISO 8601) is the deadline the message was sent for: a run retried since has a new
    one, with a message of its own, and this one does nothing.
    """
    with transition() as tx:
        try:
            run = tx.lock(run_id)
        except Run.DoesNotExist:
            return
        if run.is_finished or run.deadline_at != datetime.fromisoformat(deadline):
            return
        if run.deadline_at > timezone.now():
            transaction.on_commit(lambda: dispatch.send_run_deadline(run_id, run.deadline_at))
            return
        fail_timed_out_run(tx, run)


def fail_timed_out_run(tx: Transition, run: Run) -> None:
    seconds = snapshot.settings(run).get("timeout")
    error = {"message": RUN_TIMED_OUT.format(seconds=seconds), "type": "timeout"}
    state.finish_run(tx, run, Run.Status.FAILED, error=error)


def time_out_step(step_id, attempt: int) -> list[Dispatch]:
    """Fail (or retry) the attempt if it is still open at its deadline: running (a call that hangs),
    waiting (a delay, an approval, child runs, which are cancelled) or resumed and queued. Idempotent.

    A worker still running it notices at its next heartbeat, cuts its calls off, and its late
    result is dropped (`attempt` fences it).
    """
    with transition() as tx:
        try:
            run = tx.lock(store.step_run_id(step_id))
        except Run.DoesNotExist:  # a late message for a run deleted since
            return []
        step = tx.step_by_id(run, step_id)
        open_statuses = (Status.RUNNING, Status.WAITING, Status.QUEUED)
        if run.is_finished or step is None or step.attempt != attempt or step.status not in open_statuses:
            return []
        if step.deadline_at is None or step.started_at is None:  # queued, but not yet started
            return []
        remaining = (step.deadline_at - timezone.now()).total_seconds()
        if remaining > 0:
            return [step_deadline_check(step, remaining)]
        node = snapshot.node(run, step.node_key)
        state.cancel_children(tx, step)
        error = TransientError(STEP_TIMED_OUT.format(seconds=node.get("timeout")))
        return state.fail_or_retry(tx, run, step, node, error) + state.advance(tx, run)
