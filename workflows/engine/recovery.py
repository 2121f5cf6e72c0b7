"""Repairing what lost messages and dead workers left behind (`recover`, a beat task).

Safe to run anywhere, any time: every repair goes through the same claims and locks as the
messages it replaces, so a repair that races the original does nothing.
"""

from datetime import datetime

from django.conf import settings as django_settings
from django.db.models import Q
from django.utils import timezone

from workflows.engine import budgets, dispatch, execute, snapshot, state, store
from workflows.engine.deadlines import fail_timed_out_run, time_out_step
from workflows.engine.dispatch import Dispatch
from workflows.engine.errors import PermanentError, TransientError
from workflows.engine.liveness import timing
from workflows.engine.nodes.registry import NODE_TYPES
from workflows.engine.record import CHILDREN_SEEN
from workflows.engine.transition import transition
from workflows.models import Run, RunsPause, StepRun

INTERRUPTED = "Interrupted: the worker died during the call, which may or may not have been delivered."
WORKER_LOST = "The worker running this step stopped responding."
CRASHED_TOO_OFTEN = "The step's worker was lost {} times; the step is not run again (DWC_STEP_CRASH_LIMIT)."

Status = StepRun.Status


def recover(now: datetime | None = None) -> dict[str, int]:
    """Repair what lost messages and dead workers left behind; returns how many of each it found."""
    now = now or timezone.now()
    counts = {"lost_workers": 0, "lost_messages": 0, "timed_out_steps": 0, "due": 0, "timed_out_runs": 0, "runs": 0}
    # Reservations of calls whose attempt no longer runs would hold their budgets for ever.
    counts["budget_reservations"] = budgets.stale_released()

    stale = StepRun.objects.filter(status=Status.RUNNING, heartbeat_at__lt=now - timing("DWC_STEP_LEASE_SECONDS"))
    for step_id, attempt in stale.values_list("pk", "attempt"):
        counts["lost_workers"] += _recover_lost_worker(step_id, attempt)

    # Past their deadline by more than a beat: their time_out_step message was lost.
    overdue = StepRun.objects.filter(
        status__in=[Status.RUNNING, Status.WAITING], deadline_at__lt=now - timing("DWC_HEARTBEAT_SECONDS")
    )
    for step_id, attempt in overdue.values_list("pk", "attempt"):
        dispatch.send(time_out_step(step_id, attempt))
        counts["timed_out_steps"] += 1

    # While the engine drains, re-sent steps would be refused: the drain's end sends them all.
    draining = store.engine_draining()
    dispatches = ([] if draining else _lost_messages(now, counts)) + _due_steps(now, counts)
    dispatch.send(dispatches)

    late = Run.objects.filter(
        status__in=[Run.Status.RUNNING, Run.Status.WAITING, Run.Status.PAUSED], deadline_at__lt=now
    )
    for run_id in late.values_list("pk", flat=True):
        with transition() as tx:
            run = tx.lock(run_id)
            if not run.is_finished and run.deadline_at and run.deadline_at < now:
                fail_timed_out_run(tx, run)
                counts["timed_out_runs"] += 1

    stuck = Run.objects.filter(
        Q(status=Run.Status.PENDING, created_at__lt=now - timing("DWC_LOST_MESSAGE_SECONDS"))
        | Q(status=Run.Status.QUEUED)
    ).exclude(  # held by a pause of their workflow or workspace: its resume advances them
        Q(workflow__in=RunsPause.objects.filter(workflow__isnull=False).values("workflow"))
        | Q(workspace__in=RunsPause.objects.filter(workflow__isnull=True).values("workspace"))
    )
    for run_id in stuck.values_list("pk", flat=True):
        dispatch.send(execute.advance(run_id))
        counts["runs"] += 1
    return counts


def _lost_messages(now: datetime, counts: dict[str, int]) -> list[Dispatch]:
    """Queued steps whose message never came, and retries whose delayed message never did."""
    lost = StepRun.objects.filter(
        Q(status=Status.QUEUED, queued_at__lt=now - timing("DWC_LOST_MESSAGE_SECONDS"))
        | Q(status=Status.RETRYING, not_before__lt=now - timing("DWC_HEARTBEAT_SECONDS"))
    ).exclude(run__status=Run.Status.PAUSED)  # refused until the run resumes, which sends them
    dispatches = [
        Dispatch(str(pk), attempt, NODE_TYPES[node_type].queue, run_id=str(run_id))
        for pk, attempt, node_type, run_id in lost.values_list("pk", "attempt", "node_type", "run_id")
    ]
    counts["lost_messages"] = len(dispatches)
    return dispatches


def _due_steps(now: datetime, counts: dict[str, int]) -> list[Dispatch]:
    """Waiting steps whose time came, or whose child runs finished, with no wake-up seen."""
    due = StepRun.objects.filter(status=Status.WAITING, not_before__lte=now)
    dispatches = [dispatch.wake_up(pk, attempt) for pk, attempt in due.values_list("pk", "attempt")]
    counts["due"] = len(dispatches)
    for step in StepRun.objects.filter(status=Status.WAITING, child_runs__isnull=False).distinct():
        if store.finished_children_count(step) > step.state.get(CHILDREN_SEEN, 0):
            dispatches.append(dispatch.wake_up(step.pk, step.attempt))
            counts["due"] += 1
    return dispatches


def _recover_lost_worker(step_id, attempt: int) -> int:
    """Re-queue a running attempt whose worker stopped beating if it is safe to run again, whatever its
    retry policy (a crash is not the step's failure), up to DWC_STEP_CRASH_LIMIT times; else fail it."""
    with transition() as tx:
        try:
            run = tx.lock(store.step_run_id(step_id))
        except Run.DoesNotExist:
            return 0
        step = tx.step_by_id(run, step_id)
        if step is None or step.status != Status.RUNNING or step.attempt != attempt:
            return 0
        node = snapshot.node(run, step.node_key)
        # The dead attempt's call never settles; its reservation goes in this transaction, before the
        # next attempt is sent (at the next beat's stale_released it would be refused meanwhile).
        budgets.attempt_released(step_id, attempt)
        crash_limit = django_settings.DWC_STEP_CRASH_LIMIT
        if not NODE_TYPES[node["type"]].safe_to_rerun(node["config"]):
            dispatches = state.fail_or_retry(tx, run, step, node, PermanentError(INTERRUPTED))
        elif step.crashes >= crash_limit:
            dispatches = state.fail_or_retry(tx, run, step, node, PermanentError(CRASHED_TOO_OFTEN.format(crash_limit)))
        else:
            dispatches = state.requeue_after_crash(tx, run, step, node, TransientError(WORKER_LOST))
        dispatches += state.advance(tx, run)
    dispatch.send(dispatches)
    return 1
