"""Event triggers: when a run of one workflow ends, start another workflow of the same workspace.

`event_triggers_fire` runs in the `fire_event_triggers` task, after the source run's end committed.
It never raises for a trigger that cannot start: the refusal (the depth limit, a paused target, a
template that failed, input the target's schema rejects) is recorded on the source run instead, so
one bad trigger neither fails the task nor keeps the others from starting.
"""

import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404
from django.utils import timezone

from accounts.access import Role, ensure_role
from accounts.models import User
from audit.services import AnyRequest, audit_record, diff
from core.problems import Conflict
from workflows.engine import operations
from workflows.engine.expressions.checking import check_template
from workflows.engine.expressions.errors import ExpressionError, ExpressionSyntaxError
from workflows.engine.expressions.rendering import render_value
from workflows.engine.transition import transition
from workflows.models import EventTrigger, Run, Workflow
from workflows.services.runs import run_trigger

Errors = dict[str, list[str]]

WRITABLE_FIELDS = ("source_workflow", "on", "input_template", "enabled")
# Read-only fields a client may send back from a GET; they are not part of what it changes.
IGNORED_FIELDS = ("id", "workflow", "created_by", "created_at")

NO_SUCH_SOURCE = "No workflow with this id in this workspace."
UNKNOWN_FIELD = "Unknown field."
REQUIRED = "This field is required."
NOT_A_UUID = "Must be a workflow id."
BAD_ON = "Must be one of: {choices}."
NOT_A_BOOLEAN = "Must be true or false."
TEMPLATE_NOT_AN_OBJECT = "Must be a JSON object (or null: the source run's output is the input)."
BODY_NOT_AN_OBJECT = "The body must be a JSON object."

DEPTH_EXCEEDED = "depth limit: this run is {depth} event triggers deep, and the limit is {limit}"
REFUSED_CONFLICT = "target workflow: {message}"
REFUSED_TEMPLATE = "input_template: {message}"
REFUSED_INPUT = "input: {message}"

# The run statuses each `on` value follows.
FOLLOWS = {
    EventTrigger.On.SUCCEEDED: (Run.Status.SUCCEEDED,),
    EventTrigger.On.FAILED: (Run.Status.FAILED,),
    EventTrigger.On.FINISHED: Run.FINISHED,
}


# --- definitions ---------------------------------------------------------------------------------------


def input_template_errors(template: Any) -> Errors:
    """Syntax errors of every string in an input template, keyed `input_template.<path>`."""
    if template is None:
        return {}
    if not isinstance(template, dict):
        return {"input_template": [TEMPLATE_NOT_AN_OBJECT]}
    errors: Errors = {}
    stack: list[tuple[str, Any]] = [("input_template", template)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            try:
                check_template(value)
            except ExpressionSyntaxError as error:
                errors.setdefault(path, []).append(str(error))
        elif isinstance(value, dict):
            stack.extend((f"{path}.{key}", item) for key, item in value.items())
        elif isinstance(value, list):
            stack.extend((f"{path}.{index}", item) for index, item in enumerate(value))
    return dict(sorted(errors.items()))


def _source_workflow(workflow: Workflow, value: Any) -> Workflow:
    # A 400 on the field, not a 404: the path's workflow exists, the body names what does not. One
    # answer for a missing workflow, a deleted one and one of another workspace: no existence leak.
    try:
        source_id = uuid.UUID(str(value))
    except ValueError:
        raise ValidationError({"source_workflow": [NOT_A_UUID]}) from None
    source = Workflow.objects.filter(pk=source_id, workspace_id=workflow.workspace_id, deleted_at__isnull=True).first()
    if source is None:
        raise ValidationError({"source_workflow": [NO_SUCH_SOURCE]})
    return source


def _parse_body(workflow: Workflow, data: Any, *, creating: bool) -> dict:
    """The fields a body sets, validated. Raises ValidationError (400), also for a source not in the workspace."""
    if not isinstance(data, dict):
        raise ValidationError({"non_field_errors": [BODY_NOT_AN_OBJECT]})
    errors: Errors = {name: [UNKNOWN_FIELD] for name in sorted(set(data) - {*WRITABLE_FIELDS, *IGNORED_FIELDS})}
    fields = {name: data[name] for name in WRITABLE_FIELDS if name in data}
    if creating and fields.get("source_workflow") in (None, ""):
        errors["source_workflow"] = [REQUIRED]
    if "on" in fields and fields["on"] not in EventTrigger.On.values:
        errors["on"] = [BAD_ON.format(choices=", ".join(EventTrigger.On.values))]
    if "enabled" in fields and not isinstance(fields["enabled"], bool):
        errors["enabled"] = [NOT_A_BOOLEAN]
    if "input_template" in fields:
        errors.update(input_template_errors(fields["input_template"]))
    if errors:
        raise ValidationError(errors)
    if "source_workflow" in fields:
        fields["source_workflow"] = _source_workflow(workflow, fields["source_workflow"])
    return fields


AUDITED_FIELDS = ("source_workflow", "on", "input_template", "enabled")


def _audit_state(trigger: EventTrigger) -> dict:
    state = {name: getattr(trigger, name) for name in AUDITED_FIELDS if name != "source_workflow"}
    return {"source_workflow": trigger.source_workflow_id, **state}


def _audited(trigger: EventTrigger, *, action: str, actor: User, before: dict, after: dict, request) -> None:
    audit_record(
        action=action,
        actor=actor,
        workspace=trigger.workflow.workspace_id,
        target=trigger,
        target_type="event_trigger",
        changes=diff(before, after),
        request=request,
    )


def event_trigger_create(
    *, workflow: Workflow, actor: User, data: Any, request: AnyRequest | None = None
) -> EventTrigger:
    """Start `workflow` whenever a run of `data["source_workflow"]` (same workspace) ends as `data["on"]`."""
    ensure_role(actor, workflow.workspace, Role.EDITOR)
    fields = _parse_body(workflow, data, creating=True)
    with transaction.atomic():
        trigger = EventTrigger.objects.create(workflow=workflow, created_by=actor, **fields)
        after = _audit_state(trigger)
        _audited(trigger, action="event_trigger.created", actor=actor, before={}, after=after, request=request)
    return trigger


def event_trigger_update(
    *, trigger: EventTrigger, actor: User, data: Any, request: AnyRequest | None = None
) -> EventTrigger:
    """Change the fields given (PATCH). The target workflow stays; the source stays in its workspace."""
    ensure_role(actor, trigger.workflow.workspace, Role.EDITOR)
    fields = _parse_body(trigger.workflow, data, creating=False)
    before = _audit_state(trigger)
    for name, value in fields.items():
        setattr(trigger, name, value)
    if fields:
        with transaction.atomic():
            trigger.save(update_fields=list(fields))
            if before != _audit_state(trigger):
                _audited(
                    trigger,
                    action="event_trigger.updated",
                    actor=actor,
                    before=before,
                    after=_audit_state(trigger),
                    request=request,
                )
    return trigger


def event_trigger_delete(*, trigger: EventTrigger, actor: User, request: AnyRequest | None = None) -> None:
    ensure_role(actor, trigger.workflow.workspace, Role.EDITOR)
    with transaction.atomic():
        before = _audit_state(trigger)
        _audited(trigger, action="event_trigger.deleted", actor=actor, before=before, after={}, request=request)
        trigger.delete()


# --- firing ----------------------------------------------------------------------------------------------


def source_context(run: Run) -> dict:
    """What an input template sees as `source`."""
    return {
        "output": run.output,
        "run": {
            "id": str(run.pk),
            "status": run.status,
            "trigger": run.trigger,
            "started_at": run.started_at.isoformat() if run.started_at else None,
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
            "error": run.error,
        },
        "workflow": {"id": str(run.workflow_id), "name": run.workflow.name},
    }


def _input_for(trigger: EventTrigger, source: Run) -> Any:
    if trigger.input_template is not None:
        return render_value(trigger.input_template, {"source": source_context(source)})
    return source.output if isinstance(source.output, dict) else {"output": source.output}


def _refuse(source: Run, trigger: EventTrigger, reason: str) -> None:
    """Record on the source run that `trigger` did not start; once per trigger, so a redelivery adds nothing."""
    entry = {
        "trigger": str(trigger.pk),
        "workflow": str(trigger.workflow_id),
        "reason": reason,
        "at": timezone.now().isoformat(),
    }
    with transition() as tx:
        operations.refuse_trigger(tx, tx.lock(source.pk), entry)


def _validation_text(error: ValidationError) -> str:
    if hasattr(error, "error_dict"):
        return "; ".join(f"{field}: {' '.join(messages)}" for field, messages in error.message_dict.items())
    return " ".join(error.messages)


def _fire(trigger: EventTrigger, source: Run) -> Run | None:
    """Start the trigger's run for `source`, or record why not. Returns the run when this call created it."""
    limit = settings.DWC_EVENT_TRIGGER_MAX_DEPTH
    depth = source.event_depth + 1
    if depth > limit:
        _refuse(source, trigger, DEPTH_EXCEEDED.format(depth=source.event_depth, limit=limit))
        return None
    try:
        run_input = _input_for(trigger, source)
        # The depth and the source are set in the transaction that creates the run: its advance
        # message is sent on commit, so no worker sees the run without them.
        with transaction.atomic():
            run, created = run_trigger(
                workflow=trigger.workflow,
                input=run_input,
                trigger=Run.Trigger.EVENT,
                actor=None,
                idempotency_key=f"event:{trigger.pk}:{source.pk}",
            )
            if created:
                Run.objects.filter(pk=run.pk).update(event_depth=depth, source_run=source)
    except Conflict as error:
        _refuse(source, trigger, REFUSED_CONFLICT.format(message=error))
    except Http404:
        _refuse(source, trigger, REFUSED_CONFLICT.format(message="deleted"))
    except ExpressionError as error:
        _refuse(source, trigger, REFUSED_TEMPLATE.format(message=error))
    except ValidationError as error:
        _refuse(source, trigger, REFUSED_INPUT.format(message=_validation_text(error)))
    else:
        return run if created else None
    return None


def event_triggers_fire(*, run_id: str) -> list[Run]:
    """Start the workflows whose enabled triggers follow this finished run's end. Returns the runs started.

    Idempotent: each (trigger, source run) starts at most one run (an idempotency key), and records
    at most one refusal, so a redelivered task starts and records nothing new.
    """
    source = Run.objects.select_related("workflow").filter(pk=run_id).first()
    if source is None or not source.is_finished:
        return []
    triggers = (
        EventTrigger.objects.filter(
            source_workflow_id=source.workflow_id,
            # Triggers are created within a workspace; this keeps it so should a workflow ever move.
            workflow__workspace_id=source.workspace_id,
            enabled=True,
            on__in=[on for on, statuses in FOLLOWS.items() if source.status in statuses],
        )
        .select_related("workflow__workspace")
        .order_by("created_at")
    )
    started = []
    for trigger in triggers:
        run = _fire(trigger, source)
        if run is not None:
            started.append(run)
    return started
