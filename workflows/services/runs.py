"""Starting runs and acting on them: trigger, cancel, retry, regenerate, approve (with edits), ask
for changes.

Each service checks permission once, in Python (accounts.access), then writes in one transition of
the engine (workflows.engine.transition: the one transaction that changes run state) and records its
audit event in it; the Celery messages go out on commit.
"""

from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.http import Http404

from accounts.access import Role, ensure_role
from accounts.models import User
from audit.services import AnyRequest, audit_record, diff
from core.problems import Conflict
from workflows.engine import dispatch, launch, operations, snapshot
from workflows.engine.expressions.checking import check_template
from workflows.engine.expressions.errors import ExpressionSyntaxError
from workflows.engine.transition import transition
from workflows.models import Run, StepRun, Workflow
from workflows.services.analytics_feed import approval_decided_count

NOT_RUNNABLE = "The workflow is {status}; only draft and active workflows can be run by hand."
NOT_ACTIVE = "The workflow is {status}; only active workflows start from {trigger} triggers."
ALREADY_FINISHED = "The run has already finished ({status})."
NOT_RETRYABLE = "Only failed or cancelled runs can be retried; this one is {status}."
NOT_AN_APPROVAL = "Step {key!r} is a {type} step, not an approval."
NOT_WAITING = "Step {key!r} is not waiting for a decision (it is {status})."
NOT_AN_APPROVER = "Only the approvers named on this step may decide: {approvers}."
NOT_REGENERATABLE_RUN = "Only a finished run's documents can be regenerated; this run is {status}."
NOT_A_DOCUMENT = "Step {key!r} is a {type} step; only document steps are regenerated."
NOT_SUCCEEDED = "Step {key!r} did not succeed (it is {status}); retry the run instead."
EDITS_NEED_APPROVAL = "Edits are kept only when approving; send them with approved: true."
EDIT_NOT_UNDER_REVIEW = "{key!r} is not a document under review here; this approval reviews: {keys}."
EDIT_NO_DOCUMENT = "{key!r} has no document to edit (the step is {status})."
NOTHING_UNDER_REVIEW = "Step {key!r} reviews no documents (its config names no `documents`); approve or reject it."

MANUAL_TRIGGERS = (Run.Trigger.MANUAL, Run.Trigger.API, Run.Trigger.RETRY, Run.Trigger.SUBWORKFLOW)


def _ensure_startable(workflow: Workflow, trigger: str) -> None:
    if trigger in MANUAL_TRIGGERS:
        if workflow.status not in (Workflow.Status.DRAFT, Workflow.Status.ACTIVE):
            raise Conflict(NOT_RUNNABLE.format(status=workflow.status))
    elif workflow.status != Workflow.Status.ACTIVE:
        raise Conflict(NOT_ACTIVE.format(status=workflow.status, trigger=trigger))


def run_input_check(workflow: Workflow, value: Any, *, field: str = "input") -> None:
    """Raise ValidationError (keyed under `field`) unless `value` is an input the workflow accepts."""
    if not isinstance(value, dict):
        raise ValidationError({field: ["The run input must be a JSON object."]})
    errors = launch.input_errors(workflow.input_schema, value)
    if errors:
        raise ValidationError({field + key.removeprefix("input"): messages for key, messages in errors.items()})


def run_trigger(
    *,
    workflow: Workflow,
    input: Any,
    trigger: str,
    actor: User | None,
    idempotency_key: str | None = None,
    request: AnyRequest | None = None,
) -> tuple[Run, bool]:
    """Start a run of the workflow's current version. Returns (run, created).

    A repeated `idempotency_key` for the same workflow returns the first run (created=False).
    Raises Conflict for a workflow that may not start this way, ValidationError for bad input.
    Audited as `run.triggered` when a person or an API client (`actor`) starts it.
    """
    if workflow.is_deleted:
        raise Http404("No such workflow.")
    if actor is not None:  # first: a stranger learns nothing of the workflow, not even its status
        ensure_role(actor, workflow.workspace, Role.EDITOR)
    if idempotency_key:
        existing = Run.objects.filter(workflow=workflow, idempotency_key=idempotency_key).first()
        if existing is not None:
            return existing, False
    _ensure_startable(workflow, trigger)
    run_input_check(workflow, input)
    try:
        with transition() as tx:
            run = launch.new_run(
                workflow, input=input, trigger=trigger, actor=actor, idempotency_key=idempotency_key or None
            )
            launch.runs_start(tx, [run])
            # People and API clients only. A run the system starts (schedule, webhook, event trigger)
            # is its own record (Run.trigger, the slot, the delivery); auditing it would put every
            # webhook delivery behind the audit chain's one lock.
            if actor is not None:
                tx.flush()  # the run's rows first: the audit chain's lock is then held only to the commit
                changes = {"workflow": [None, str(workflow.pk)], "trigger": [None, trigger]}
                audit_record(
                    action="run.triggered",
                    actor=actor,
                    workspace=workflow.workspace_id,
                    target=run,
                    changes=changes,
                    request=request,
                )
    except IntegrityError:
        # Two requests with one key raced: the other one created the run.
        return Run.objects.get(workflow=workflow, idempotency_key=idempotency_key), False
    return run, True


MAX_BATCH = 1000


def runs_trigger_many(
    *, workflow: Workflow, inputs: list, trigger: str, actor: User | None, request: AnyRequest | None = None
) -> list[Run]:
    """Start one run per input, all in one transaction (a batch import, a backfill): all or none.

    Each input is checked like run_trigger's; errors are keyed `inputs.<index>`. One `run.triggered`
    audit event (target: the workflow) records the batch and its size.
    """
    if workflow.is_deleted:
        raise Http404("No such workflow.")
    if actor is not None:
        ensure_role(actor, workflow.workspace, Role.EDITOR)
    _ensure_startable(workflow, trigger)
    if not isinstance(inputs, list) or not 0 < len(inputs) <= MAX_BATCH:
        raise ValidationError({"inputs": [f"A list of 1 to {MAX_BATCH} run inputs."]})
    for index, value in enumerate(inputs):
        run_input_check(workflow, value, field=f"inputs.{index}")
    with transition() as tx:
        runs = [launch.new_run(workflow, input=value, trigger=trigger, actor=actor) for value in inputs]
        launch.runs_start(tx, runs)
        tx.flush()
        audit_record(
            action="run.triggered",
            actor=actor,
            workspace=workflow.workspace_id,
            target=workflow,
            changes={"count": [None, len(runs)], "trigger": [None, trigger]},
            request=request,
        )
    return runs


def _run_audited(run: Run, *, action: str, actor: User, before: str, request: AnyRequest | None, **extra) -> None:
    changes = {"status": [before, run.status]} if run.status != before else {}
    changes.update(diff({}, extra))
    audit_record(action=action, actor=actor, workspace=run.workspace_id, target=run, changes=changes, request=request)


def run_cancel(*, run: Run, actor: User, request: AnyRequest | None = None) -> Run:
    """Stop a run: open steps are cancelled and running ones' late results dropped. 409 if finished."""
    ensure_role(actor, run.workspace, Role.EDITOR)
    with transition() as tx:
        run = tx.lock(run.pk)
        if run.is_finished:
            raise Conflict(ALREADY_FINISHED.format(status=run.status))
        before = run.status
        operations.cancel(tx, run)
        tx.flush()
        _run_audited(run, action="run.cancelled", actor=actor, before=before, request=request)
    return run


def run_retry(*, run: Run, actor: User, request: AnyRequest | None = None) -> Run:
    """Re-run what failed, was cancelled or never ran; succeeded steps keep their outputs."""
    ensure_role(actor, run.workspace, Role.EDITOR)
    with transition() as tx:
        run = tx.lock(run.pk)
        if run.status not in (Run.Status.FAILED, Run.Status.CANCELLED):
            raise Conflict(NOT_RETRYABLE.format(status=run.status))
        before = run.status
        dispatches = operations.retry(tx, run)
        transaction.on_commit(lambda: dispatch.send(dispatches))
        tx.flush()
        _run_audited(run, action="run.retried", actor=actor, before=before, request=request)
    return run


def step_regenerate(
    *,
    run: Run,
    node_key: str,
    actor: User,
    prompt: str | None = None,
    cascade: bool = False,
    request: AnyRequest | None = None,
) -> Run:
    """Generate a new version of a finished run's document step; with `cascade`, re-run what follows it.

    `prompt` (a template, checked like a node's) replaces the node's prompt for this generation.
    """
    ensure_role(actor, run.workspace, Role.EDITOR)
    if prompt is not None:
        try:
            check_template(prompt)
        except ExpressionSyntaxError as error:
            raise ValidationError({"prompt": [str(error)]}) from error
    with transition() as tx:
        run = tx.lock(run.pk)
        step = tx.steps(run).get(node_key)
        if step is None:
            raise Http404(f"The run has no step {node_key!r}.")
        if not run.is_finished:
            raise Conflict(NOT_REGENERATABLE_RUN.format(status=run.status))
        if step.node_type != "document":
            raise Conflict(NOT_A_DOCUMENT.format(key=node_key, type=step.node_type))
        if step.status != StepRun.Status.SUCCEEDED:
            raise Conflict(NOT_SUCCEEDED.format(key=node_key, status=step.status))
        before = run.status
        dispatches = operations.regenerate(tx, run, step, prompt=prompt, cascade=cascade)
        transaction.on_commit(lambda: dispatch.send(dispatches))
        tx.flush()
        _run_audited(
            run,
            action="run.regenerated",
            actor=actor,
            before=before,
            request=request,
            step=node_key,
            cascade=cascade,
            prompt=prompt,
        )
    return run


def _waiting_approval(tx, run: Run, node_key: str, actor: User) -> StepRun:
    """The run's approval step `node_key`, waiting, if `actor` may decide it (the run locked)."""
    step = tx.steps(run).get(node_key)
    if step is None:
        raise Http404(f"The run has no step {node_key!r}.")
    if step.node_type != "approval":
        raise Conflict(NOT_AN_APPROVAL.format(key=node_key, type=step.node_type))
    if step.status != StepRun.Status.WAITING:
        raise Conflict(NOT_WAITING.format(key=node_key, status=step.status))
    approvers = [email.lower() for email in (step.input or {}).get("config", {}).get("approvers", [])]
    if approvers and actor.email.lower() not in approvers:
        raise PermissionDenied(NOT_AN_APPROVER.format(approvers=", ".join(approvers)))
    return step


def _under_review(run: Run, node_key: str) -> list[str]:
    """The document steps the approval `node_key` reviews, as the run's version names them.

    Saving through the API checks the names (workflows.specs); the admin's graph forms do not, so a
    name that is not an upstream document node is left out here rather than reopened."""
    named = snapshot.node(run, node_key)["config"].get("documents") or []
    upstream = set(snapshot.ancestors_in_order(run, node_key))
    nodes = snapshot.nodes_by_key(run)
    return [key for key in named if key in upstream and nodes[key]["type"] == "document"]


def _edits_check(tx, run: Run, node_key: str, edits: dict[str, str]) -> dict[str, str]:
    """The edits that change something; ValidationError (under `edits`) for a step not under review
    or without a document. An edit equal to the document's content is no edit: it makes no version."""
    reviewed = _under_review(run, node_key)
    changed = {}
    for key, content in edits.items():
        if key not in reviewed:
            keys = ", ".join(reviewed) or "none"
            raise ValidationError({"edits": [EDIT_NOT_UNDER_REVIEW.format(key=key, keys=keys)]})
        step = tx.steps(run)[key]
        output = step.output if isinstance(step.output, dict) else {}
        if step.status != StepRun.Status.SUCCEEDED or not output.get("document_id"):
            raise ValidationError({"edits": [EDIT_NO_DOCUMENT.format(key=key, status=step.status)]})
        if content != output.get("content"):
            changed[key] = content
    return changed


def step_approve(
    *,
    run: Run,
    node_key: str,
    actor: User,
    approved: bool,
    comment: str = "",
    edits: dict[str, str] | None = None,
    request: AnyRequest | None = None,
) -> StepRun:
    """Approve or reject a waiting approval step. Named approvers, when the node lists them, decide alone.

    `edits` ({node key: content}) replace documents under review (the approval's `documents`) with
    the actor's versions before approving; the steps after the approval read those. ValidationError
    (`edits`) for edits with a rejection, of a step not under review, or of one without a document.
    """
    ensure_role(actor, run.workspace, Role.EDITOR)
    if edits and not approved:
        raise ValidationError({"edits": [EDITS_NEED_APPROVAL]})
    with transition() as tx:
        run = tx.lock(run.pk)
        step = _waiting_approval(tx, run, node_key, actor)
        changed = _edits_check(tx, run, node_key, edits or {})
        before = run.status
        dispatches = operations.decide(tx, run, step, approved=approved, by=actor.email, comment=comment, edits=changed)
        transaction.on_commit(lambda: dispatch.send(dispatches))
        tx.flush()
        extra = {"edits": step.state["decision"]["edits"]} if changed else {}
        _run_audited(
            run,
            action="run.approved" if approved else "run.rejected",
            actor=actor,
            before=before,
            request=request,
            step=node_key,
            comment=comment,
            **extra,
        )
        approval_decided_count(run=run, node_key=node_key, approved=approved)
    step.refresh_from_db()
    return step


def step_request_changes(
    *, run: Run, node_key: str, actor: User, comment: str, request: AnyRequest | None = None
) -> Run:
    """Send the documents a waiting approval reviews back to be written again, with `comment` added to
    their prompts; the steps between them and the approval run again, and the approval waits anew.

    Who may: as for step_approve. Conflict when the approval reviews no documents.
    """
    ensure_role(actor, run.workspace, Role.EDITOR)
    with transition() as tx:
        run = tx.lock(run.pk)
        step = _waiting_approval(tx, run, node_key, actor)
        keys = _under_review(run, node_key)
        if not keys:
            raise Conflict(NOTHING_UNDER_REVIEW.format(key=node_key))
        before = run.status
        dispatches = operations.request_changes(tx, run, step, keys=keys, by=actor.email, comment=comment)
        transaction.on_commit(lambda: dispatch.send(dispatches))
        tx.flush()
        _run_audited(
            run,
            action="run.changes_requested",
            actor=actor,
            before=before,
            request=request,
            step=node_key,
            comment=comment,
            documents=keys,
        )
    return run
