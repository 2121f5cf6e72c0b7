"""Holding runs back and letting them go: pause and resume a run, a workflow's runs or a workspace's
runs, and drain the whole engine for a deploy or an incident. Every change is audited.

What a pause does to a run is in `workflows.engine.pausing`. A workflow's or workspace's pause also
holds its new runs: triggers are accepted and recorded as ever, and their runs wait `queued` until
the pause is lifted, then start oldest first. This is not the workflow's `paused` status, which
refuses new triggers and leaves running runs alone.
"""

import time
from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import PermissionDenied
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import QuerySet

from accounts.access import Role, ensure_role
from accounts.models import User, Workspace
from audit.services import AnyRequest, audit_record
from core.problems import Conflict
from workflows import realtime
from workflows.engine import dispatch, pausing, store
from workflows.engine.transition import transition
from workflows.models import EngineDrain, Run, RunsPause, Workflow

ALREADY_FINISHED = "The run has already finished ({status})."
ALREADY_PAUSED = "The run is paused already."
NOT_PAUSED = "The run is not paused (it is {status})."
HELD_BY_PAUSE = "The runs of this run's {scope} are paused: resume the {scope}'s runs."
RUNS_ALREADY_PAUSED = "The runs of this {scope} are paused already."
RUNS_NOT_PAUSED = "The runs of this {scope} are not paused."
ALREADY_DRAINING = "The engine is draining already."
NOT_DRAINING = "The engine is not draining."
STAFF_ONLY = "Only staff operate the engine."

Scope = Run.PauseScope


def _open_runs(runs: QuerySet[Run]) -> list:
    return list(runs.filter(status__in=pausing.OPEN_RUN).order_by("created_at").values_list("pk", flat=True))


def _audited_run(run: Run, action: str, actor: User, before: str, request: AnyRequest | None, **extra) -> None:
    changes = {"status": [before, run.status], **{name: [None, value] for name, value in extra.items()}}
    audit_record(action=action, actor=actor, workspace=run.workspace_id, target=run, changes=changes, request=request)


# --- one run -----------------------------------------------------------------------------------


def run_pause(*, run: Run, actor: User, stop: bool = False, request: AnyRequest | None = None) -> Run:
    """Pause a run (editors): no new step starts; with `stop`, running steps that are safe to run again
    are stopped and run again on resume, the others finish. 409 if finished or paused."""
    ensure_role(actor, run.workspace, Role.EDITOR)
    with transition() as tx:
        run = tx.lock(run.pk)
        if run.is_finished:
            raise Conflict(ALREADY_FINISHED.format(status=run.status))
        if run.status == Run.Status.PAUSED:
            raise Conflict(ALREADY_PAUSED)
        before = run.status
        pausing.pause(tx, run, scope=Scope.RUN, by=actor.email, stop=stop)
        tx.flush()
        _audited_run(run, "run.paused", actor, before, request, stop=stop)
    return run


def run_resume(*, run: Run, actor: User, request: AnyRequest | None = None) -> Run:
    """Continue a paused run where it stopped (editors). 409 if it is not paused, or if its workflow's
    or workspace's runs are paused (those resume together)."""
    ensure_role(actor, run.workspace, Role.EDITOR)
    with transition() as tx:
        run = tx.lock(run.pk)
        if run.status != Run.Status.PAUSED:
            raise Conflict(NOT_PAUSED.format(status=run.status))
        if run.pause_scope != Scope.RUN and store.runs_paused_for(run):
            raise Conflict(HELD_BY_PAUSE.format(scope=run.pause_scope))
        before = run.status
        dispatches = pausing.resume(tx, run, by=actor.email)
        transaction.on_commit(lambda: dispatch.send(dispatches))
        tx.flush()
        _audited_run(run, "run.resumed", actor, before, request)
    return run


# --- a workflow's or a workspace's runs ------------------------------------------------------------


def _runs_pause(
    *, workspace: Workspace, workflow: Workflow | None, actor: User, request: AnyRequest | None
) -> RunsPause:
    scope = Scope.WORKFLOW if workflow else Scope.WORKSPACE
    try:
        with transaction.atomic():
            pause = RunsPause.objects.create(workspace=workspace, workflow=workflow, paused_by=actor)
            audit_record(
                action=f"{scope}.runs_paused",
                actor=actor,
                workspace=workspace,
                target=workflow or workspace,
                request=request,
            )
            realtime.workflow_event(
                f"{scope}.runs_paused", workspace_id=workspace.pk, workflow_id=workflow and workflow.pk, actor=actor
            )
    except IntegrityError as error:
        raise Conflict(RUNS_ALREADY_PAUSED.format(scope=scope)) from error
    # Each run is paused in a transition of its own. A run that was starting while the pause was made
    # may have missed it (it started having not seen it): the second look finds it running.
    runs = Run.objects.filter(workflow=workflow) if workflow else Run.objects.filter(workspace=workspace)
    for _ in range(2):
        for run_id in _open_runs(runs):
            with transition() as tx:
                pausing.pause(tx, tx.lock(run_id), scope=scope, by=actor.email)
    return pause


def _runs_resume(*, workspace: Workspace, workflow: Workflow | None, actor: User, request: AnyRequest | None) -> None:
    scope = Scope.WORKFLOW if workflow else Scope.WORKSPACE
    with transaction.atomic():
        deleted, _ = RunsPause.objects.filter(workspace=workspace, workflow=workflow).delete()
        if not deleted:
            raise Conflict(RUNS_NOT_PAUSED.format(scope=scope))
        audit_record(
            action=f"{scope}.runs_resumed",
            actor=actor,
            workspace=workspace,
            target=workflow or workspace,
            request=request,
        )
        realtime.workflow_event(
            f"{scope}.runs_resumed", workspace_id=workspace.pk, workflow_id=workflow and workflow.pk, actor=actor
        )
    runs = Run.objects.filter(workflow=workflow) if workflow else Run.objects.filter(workspace=workspace)
    paused = runs.filter(status=Run.Status.PAUSED, pause_scope=scope).order_by("created_at")
    for run_id in paused.values_list("pk", flat=True):
        with transition() as tx:
            run = tx.lock(run_id)
            if run.status != Run.Status.PAUSED or run.pause_scope != scope:
                continue
            if store.runs_paused_for(run):
                # Still held by the other pause (its workspace's, or its workflow's): it resumes with that.
                run.pause_scope = Scope.WORKSPACE if scope == Scope.WORKFLOW else Scope.WORKFLOW
                tx.save(run, "pause_scope")
                continue
            dispatches = pausing.resume(tx, run, by=actor.email)
            transaction.on_commit(lambda dispatches=dispatches: dispatch.send(dispatches))
    pausing.held_runs_released(runs)


def workflow_runs_pause(*, workflow: Workflow, actor: User, request: AnyRequest | None = None) -> RunsPause:
    """Pause the workflow's running runs and hold its new ones queued (editors). 409 if paused already."""
    ensure_role(actor, workflow.workspace, Role.EDITOR)
    return _runs_pause(workspace=workflow.workspace, workflow=workflow, actor=actor, request=request)


def workflow_runs_resume(*, workflow: Workflow, actor: User, request: AnyRequest | None = None) -> None:
    """Resume the runs the workflow's pause paused and start those it held, oldest first (editors)."""
    ensure_role(actor, workflow.workspace, Role.EDITOR)
    _runs_resume(workspace=workflow.workspace, workflow=workflow, actor=actor, request=request)


def workspace_runs_pause(*, workspace: Workspace, actor: User, request: AnyRequest | None = None) -> RunsPause:
    """Pause every running run of the workspace and hold its new ones queued (admins and owners)."""
    ensure_role(actor, workspace, Role.ADMIN)
    return _runs_pause(workspace=workspace, workflow=None, actor=actor, request=request)


def workspace_runs_resume(*, workspace: Workspace, actor: User, request: AnyRequest | None = None) -> None:
    """Resume what the workspace's pause paused and start what it held (admins and owners)."""
    ensure_role(actor, workspace, Role.ADMIN)
    _runs_resume(workspace=workspace, workflow=None, actor=actor, request=request)


def runs_pause_of(*, workspace: Workspace, workflow: Workflow | None = None) -> RunsPause | None:
    """The pause of the workflow's (or, workflow None, the whole workspace's) runs, if they are paused."""
    return RunsPause.objects.filter(workspace=workspace, workflow=workflow).select_related("paused_by").first()


# --- the engine ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EngineStatus:
    draining: bool
    since: datetime | None
    by: str
    reason: str
    running_steps: int  # still finishing, while draining
    held_steps: int  # queued or retrying, waiting for the drain's end


def engine_status(*, actor: User | None = None) -> EngineStatus:
    """Whether the engine drains, since when and by whom, and how many steps run and wait (staff)."""
    _ensure_staff(actor)
    drain = EngineDrain.objects.select_related("by").first()
    counts = store.open_step_counts()
    return EngineStatus(
        draining=drain is not None,
        since=drain.since if drain else None,
        by=drain.by.email if drain and drain.by else "",
        reason=drain.reason if drain else "",
        running_steps=counts["running"],
        held_steps=counts["held"],
    )


def engine_status_public() -> dict:
    """What /status shows of the engine, to anyone who may read it: whether it drains, since when."""
    try:
        drain = EngineDrain.objects.first()
    except DatabaseError:  # /status answers while the database is down; /ready tells that part
        return {"draining": None, "draining_since": None}
    return {"draining": drain is not None, "draining_since": drain.since.isoformat() if drain else None}


def _ensure_staff(actor: User | None) -> None:
    # None: a management command, run by whoever holds the server.
    if actor is not None and not actor.is_staff:
        raise PermissionDenied(STAFF_ONLY)


def engine_drain(*, actor: User | None, reason: str = "", request: AnyRequest | None = None) -> EngineStatus:
    """Drain the engine (staff): workers finish the steps they hold and start no new ones. 409 if draining."""
    _ensure_staff(actor)
    try:
        with transaction.atomic():
            EngineDrain.objects.create(by=actor, reason=reason[:500])
            audit_record(
                action="engine.drained",
                actor=actor,
                target_type="engine",
                changes={"reason": [None, reason]},
                request=request,
            )
    except IntegrityError as error:
        raise Conflict(ALREADY_DRAINING) from error
    return engine_status()


def engine_drained_within(seconds: float) -> EngineStatus:
    """Wait up to `seconds` for the steps running when the drain began to finish (a deploy script's
    "drain, wait, then stop the workers"); returns the status at the end."""
    deadline = time.monotonic() + seconds
    shown = engine_status()
    while shown.running_steps and time.monotonic() < deadline:
        time.sleep(0.5)
        shown = engine_status()
    return shown


def engine_resume(*, actor: User | None, request: AnyRequest | None = None) -> EngineStatus:
    """End the drain (staff) and send every step it held back. 409 if not draining."""
    _ensure_staff(actor)
    with transaction.atomic():
        deleted, _ = EngineDrain.objects.all().delete()
        if not deleted:
            raise Conflict(NOT_DRAINING)
        audit_record(action="engine.resumed", actor=actor, target_type="engine", request=request)
    dispatch.send(pausing.drain_released())
    return engine_status()
