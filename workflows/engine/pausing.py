"""Pausing and resuming runs, and releasing what the engine's drain held back.

A paused run (status `paused`) starts no step: its claims are refused (`execute._claim`) and advancing
it queues nothing (`state.advance`). Its running steps finish and are recorded; with `stop`, those safe
to run again (as after a crash) are stopped as cancel stops them, and run again on resume as a new
attempt. Delays, approvals, waits and the run's own timeout keep their deadlines: a delay that ends
while the run is paused leaves its step queued, to run on resume. A paused run holds no concurrency
slot, so a resumed one may have to wait for one, as a new run does.

While the engine drains (an `EngineDrain` row, read with every run lock as `run.draining`), no claim
succeeds: workers finish what they hold and start nothing. A refused message is not lost, as its step
stays queued; `drain_released` sends them all again when the drain ends.
"""

from django.db.models import Q
from django.utils import timezone

from workflows.engine import dispatch, execute, snapshot, state, store
from workflows.engine.dispatch import Dispatch
from workflows.engine.nodes.registry import NODE_TYPES
from workflows.engine.transition import Transition
from workflows.models import Run, StepRun

Status = StepRun.Status
OPEN_RUN = (Run.Status.RUNNING, Run.Status.WAITING)


def pause(tx: Transition, run: Run, *, scope: str, by: str, stop: bool = False) -> bool:
    """Pause the run; False when there is nothing to pause (finished, paused already, or, for a
    workflow's or workspace's pause, not started: such runs are held queued by the pause itself)."""
    if run.is_finished or run.status == Run.Status.PAUSED:
        return False
    if scope != Run.PauseScope.RUN and run.status not in OPEN_RUN:
        return False
    run.status, run.pause_scope = Run.Status.PAUSED, scope
    tx.save(run, "status", "pause_scope")
    stopped, finishing = [], []
    for step in tx.steps(run).values():
        if step.status != Status.RUNNING:
            continue
        node = snapshot.node(run, step.node_key)
        if stop and NODE_TYPES[node["type"]].safe_to_rerun(node["config"]):
            # A new attempt: the running one's heartbeat sees it and stops its calls, and its late
            # result is dropped (the attempt is the fencing token). Its message is sent on resume.
            state.queue(tx, run, step, node)
            stopped.append(step.node_key)
        else:
            finishing.append(step.node_key)
    tx.emit(run, "run.paused", data={"scope": scope, "by": by, "stopped": stopped, "finishing": finishing})
    return True


def resume(tx: Transition, run: Run, *, by: str) -> list[Dispatch]:
    """Continue a paused run where it stopped; returns the messages that start its next steps."""
    if run.status != Run.Status.PAUSED:
        return []
    scope = run.pause_scope
    run.pause_scope = ""
    limit = snapshot.settings(run).get("max_concurrency")
    if run.started_at and not (limit and store.busy_runs(run) >= limit):
        run.status = Run.Status.RUNNING  # back in its slot, with its start and its deadline
    else:
        # Not started yet, or its slot was taken meanwhile: it waits for one as a new run does.
        run.status = Run.Status.QUEUED if run.started_at else Run.Status.PENDING
    tx.save(run, "status", "pause_scope")
    tx.emit(run, "run.resumed", data={"scope": scope, "by": by, "status": run.status})
    dispatches = state.advance(tx, run)
    if run.status not in OPEN_RUN:
        return dispatches
    return dispatches + _held_steps(run, tx.steps(run).values(), {dispatch.step_id for dispatch in dispatches})


def _held_steps(run: Run, steps, sent: set[str]) -> list[Dispatch]:
    """Messages for the run's queued and retrying steps: theirs were refused while it was held."""
    now = timezone.now()
    dispatches = []
    for step in steps:
        if str(step.pk) in sent or step.status not in (Status.QUEUED, Status.RETRYING):
            continue
        node_type = NODE_TYPES[step.node_type]
        wait = (step.not_before - now).total_seconds() if step.status == Status.RETRYING and step.not_before else 0
        dispatches.append(
            Dispatch(
                str(step.pk),
                step.attempt,
                node_type.queue,
                countdown=max(wait, 0),
                inline=node_type.inline,
                run_id=str(run.pk),
            )
        )
    return dispatches


def drain_released() -> list[Dispatch]:
    """When a drain ends: messages for every queued or retrying step of the open runs (their claims
    were refused). Read without run locks: a step claimed meanwhile refuses the repeat."""
    open_steps = StepRun.objects.filter(Q(status=Status.QUEUED) | Q(status=Status.RETRYING), run__status__in=OPEN_RUN)
    by_run: dict = {}
    for step in open_steps.only("pk", "run_id", "attempt", "status", "not_before", "node_type"):
        by_run.setdefault(step.run_id, []).append(step)
    dispatches = []
    for run_id, steps in by_run.items():
        dispatches += _held_steps(Run(pk=run_id), steps, set())
    return dispatches


def held_runs_released(runs) -> None:
    """Start the runs a lifted pause held, oldest first: each is advanced here, in order (a message
    each would let workers start them in any order), and takes a slot if its workflow has one."""
    held = runs.filter(status__in=(Run.Status.PENDING, Run.Status.QUEUED)).order_by("created_at")
    for run_id in held.values_list("pk", flat=True):
        dispatch.send(execute.advance(run_id))
