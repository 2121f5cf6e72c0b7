"""New runs: built on a workflow's current version, inserted with their steps, and started."""

from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from workflows.engine import dispatch, json_schema, snapshot, store
from workflows.engine.dispatch import Dispatch
from workflows.engine.nodes.registry import NODE_TYPES
from workflows.engine.transition import Transition
from workflows.models import Run, StepRun, Workflow

UNUSABLE_INPUT_SCHEMA = "The workflow's input_schema cannot be applied (edit it to fix this): {problem}"


def input_errors(schema: dict, value: Any) -> dict[str, list[str]]:
    """What is wrong with `value` as a run input for `schema`, by path (`input.topic`); {} if nothing."""
    if not schema:
        return {}
    try:
        schema_errors = json_schema.schema_errors(schema, value)
    except json_schema.UnusableSchema as error:
        return {"input": [UNUSABLE_INPUT_SCHEMA.format(problem=error)]}
    errors: dict[str, list[str]] = {}
    for error in schema_errors:
        path = ".".join(["input", *(str(part) for part in error.absolute_path)])
        errors.setdefault(path, []).append(error.message)
    return errors


def new_run(workflow: Workflow, *, input: Any, trigger: str, actor, **fields) -> Run:
    """An unsaved run of the workflow's current version; `runs_start` writes and starts it."""
    return Run(
        workspace_id=workflow.workspace_id,
        workflow=workflow,
        version=snapshot.current_version(workflow),
        trigger=trigger,
        input=input,
        created_by=actor,
        **fields,
    )


def runs_start(tx: Transition, runs: list[Run]) -> None:
    """Insert new runs of one version, with their steps and first events, and start them.

    Without a concurrency limit a run starts in the transaction that creates it: it is inserted
    running, its root steps queued, and their messages go out on commit, so a run costs no
    advance_run round trip and a batch of runs a handful of statements. With a limit,
    advance_run decides, under locks.
    """
    if not runs:
        return
    snapshot_data = runs[0].version.snapshot
    roots = snapshot.roots(snapshot_data)
    # A workflow whose runs are paused (or its workspace's) holds new ones: advance_run queues them.
    startable = (
        bool(roots) and not snapshot_data["settings"].get("max_concurrency") and not store.runs_paused_for(runs[0])
    )
    timeout = snapshot_data["settings"].get("timeout")
    now = timezone.now()
    steps: list[StepRun] = []
    dispatches: list[Dispatch] = []
    for run in runs:
        tx.emit(run, "run.created", data={"trigger": run.trigger, "version": run.version.number})
        if startable:
            run.status, run.started_at = Run.Status.RUNNING, now
            run.deadline_at = now + timedelta(seconds=timeout) if timeout else None
            tx.emit(run, "run.started")
        for node in snapshot_data["nodes"]:
            step = StepRun(run=run, node_key=node["key"], node_type=node["type"])
            if startable and node["key"] in roots:
                dispatches.append(_queue_root(tx, run, step, now))
            steps.append(step)
    tx.insert(runs, steps)
    if not startable:
        for run in runs:
            transaction.on_commit(lambda run_id=run.pk: dispatch.send_advance(run_id))
        return
    transaction.on_commit(lambda: dispatch.send(dispatches))
    for run in runs if timeout else []:
        transaction.on_commit(lambda run=run: dispatch.send_run_deadline(run.pk, run.deadline_at))


def _queue_root(tx: Transition, run: Run, step: StepRun, now) -> Dispatch:
    node_type = NODE_TYPES[step.node_type]
    step.status, step.attempt, step.queued_at = StepRun.Status.QUEUED, 1, now
    tx.emit(run, "step.queued", step=step.node_key, data={"attempt": 1})
    return Dispatch(str(step.pk), 1, node_type.queue, inline=node_type.inline, run_id=str(run.pk))
