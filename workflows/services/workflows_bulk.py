"""One action applied to many workflows at once: all of them, or none."""

import uuid
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.access import Role, ensure_role
from accounts.models import User
from audit.services import AnyRequest, audit_record_many, diff
from workflows import realtime
from workflows.models import Workflow, WorkflowTag
from workflows.selectors import workflows_for_user

BULK_ACTIONS = ("activate", "pause", "archive", "delete", "tag", "untag")
STATUS_OF_ACTION = {
    "activate": Workflow.Status.ACTIVE,
    "pause": Workflow.Status.PAUSED,
    "archive": Workflow.Status.ARCHIVED,
}


def workflows_bulk(
    *, actor: User, action: str, ids: Any, tag: str | None = None, request: AnyRequest | None = None
) -> int:
    """Apply one action to many workflows: all of them, or none if any id is missing or forbidden."""
    if action not in BULK_ACTIONS:
        raise ValidationError({"action": [f"Must be one of: {', '.join(BULK_ACTIONS)}."]})
    if not isinstance(ids, list) or not ids or len(ids) > 1000:
        raise ValidationError({"ids": ["Must be a list of 1 to 1000 workflow ids."]})
    if action in ("tag", "untag") and not (isinstance(tag, str) and 0 < len(tag.strip()) <= 50):
        raise ValidationError({"tag": ["A tag of 1 to 50 characters is required for tag and untag."]})
    wanted: dict[str, uuid.UUID | None] = {}
    for raw in ids:
        try:
            wanted[str(raw)] = uuid.UUID(str(raw))
        except ValueError:
            wanted[str(raw)] = None
    # Superusers operate every workspace (ensure_role agrees); everyone else sees their own.
    candidates = Workflow.objects.filter(deleted_at__isnull=True) if actor.is_superuser else workflows_for_user(actor)
    visible = {
        workflow.pk: workflow
        for workflow in candidates.select_related("workspace").filter(pk__in=[pk for pk in wanted.values() if pk])
    }
    errors = {}
    for raw, pk in wanted.items():
        workflow = visible.get(pk)
        if workflow is None:
            errors[raw] = ["No such workflow."]
            continue
        try:
            ensure_role(actor, workflow.workspace, Role.EDITOR)
        except PermissionDenied as error:  # reported per id with the others, not raised alone
            errors[raw] = [str(error)]
    if errors:
        raise ValidationError({f"ids.{raw}": messages for raw, messages in errors.items()})
    targets = Workflow.objects.filter(pk__in=list(visible))
    now = timezone.now()
    with transaction.atomic():
        tags_before = _tags_by_workflow(list(visible)) if action in ("tag", "untag") else {}
        if action in STATUS_OF_ACTION:
            targets.update(status=STATUS_OF_ACTION[action], updated_at=now)
        elif action == "delete":
            targets.update(deleted_at=now)
        elif action == "tag":
            WorkflowTag.objects.bulk_create(
                [WorkflowTag(workflow_id=pk, name=tag.strip()) for pk in visible], ignore_conflicts=True
            )
        else:
            WorkflowTag.objects.filter(workflow_id__in=list(visible), name=tag.strip()).delete()
        tags_after = _tags_by_workflow(list(visible)) if action in ("tag", "untag") else {}
        records, events = [], []
        for pk, workflow in visible.items():
            if action in STATUS_OF_ACTION:
                changes = diff({"status": workflow.status}, {"status": STATUS_OF_ACTION[action]})
            elif action == "delete":
                changes = {"deleted_at": [None, now]}
            else:
                changes = diff({"tags": tags_before.get(pk, [])}, {"tags": tags_after.get(pk, [])})
            if changes:
                name = "workflow.deleted" if action == "delete" else "workflow.updated"
                records.append(
                    {"action": name, "workspace": workflow.workspace, "target": workflow, "changes": changes}
                )
                events.append(_event(name, workflow, actor, status=STATUS_OF_ACTION.get(action, workflow.status)))
        audit_record_many(records=records, actor=actor, request=request)
        realtime.send_on_commit(events)
    return len(visible)


def _event(event_type: str, workflow: Workflow, actor: User, *, status: str) -> dict:
    if event_type == "workflow.deleted":
        data = {"name": workflow.name}
    else:
        data = {"name": workflow.name, "status": status, "version": workflow.version}
    return realtime.workflow_envelope(
        event_type, workspace_id=workflow.workspace_id, workflow_id=workflow.pk, actor=actor, **data
    )


def _tags_by_workflow(workflow_ids: list) -> dict:
    tags: dict = {}
    for workflow_id, name in WorkflowTag.objects.filter(workflow_id__in=workflow_ids).values_list(
        "workflow_id", "name"
    ):
        tags.setdefault(workflow_id, []).append(name)
    return {workflow_id: sorted(names) for workflow_id, names in tags.items()}
