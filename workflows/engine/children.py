"""Child runs: what a loop or subworkflow step starts, and waits for.

A parent step's children start in the transaction that records the step, all or none: every child's
workflow and input is checked before anything is written, and one that fails the check fails the
step instead (a PermanentError: retrying would find the same).
"""

from workflows.engine import launch, store
from workflows.engine.errors import PermanentError
from workflows.engine.nodes.base import ChildRun
from workflows.engine.transition import Transition
from workflows.models import Run, StepRun

CHILD_WORKFLOW_MISSING = "Workflow {ref!r} does not exist in this workspace."
CHILD_INPUT_REJECTED = "A child run's input was rejected: {errors}"


def spawn(tx: Transition, run: Run, step: StepRun, children: list[ChildRun]) -> list[Run] | PermanentError:
    """Start the step's child runs; nothing is written, and an error returned, if one cannot start."""
    workflows = {}
    for child in children:
        if child.workflow not in workflows:
            workflow = store.child_workflow(run.workspace_id, child.workflow)
            if workflow is None:
                return PermanentError(CHILD_WORKFLOW_MISSING.format(ref=child.workflow))
            workflows[child.workflow] = workflow
        errors = launch.input_errors(workflows[child.workflow].input_schema, child.input)
        if errors:
            return PermanentError(CHILD_INPUT_REJECTED.format(errors=errors))
    created, by_workflow = [], {}
    for child in children:
        workflow = workflows[child.workflow]
        new = launch.new_run(
            workflow,
            input=child.input,
            trigger=Run.Trigger.SUBWORKFLOW,
            actor=None,
            parent_step=step,
            parent_index=child.index,
        )
        new.created_by_id = run.created_by_id  # the parent's starter, without loading the user
        created.append(new)
        by_workflow.setdefault(workflow.pk, []).append(new)
    for runs in by_workflow.values():  # runs_start takes runs of one version
        launch.runs_start(tx, runs)
    return created
