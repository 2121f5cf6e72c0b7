"""Workflows as a whole: create, update (fields, tags and optionally the whole graph), delete, restore,
and restore an earlier version."""

from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.access import Role, ensure_role
from accounts.models import User, Workspace
from audit.services import AnyRequest, audit_record, diff
from core.problems import Conflict
from workflows import realtime
from workflows.models import Workflow, WorkflowTag
from workflows.selectors import workflow_specs
from workflows.services.definitions import (
    specs_checked,
    workflow_graph_save,
    workflow_lock,
    workflow_slugs,
    workflow_version_record,
)
from workflows.services.references import workflow_references_check
from workflows.specs import (
    definition_check,
    nodes_from_document,
    settings_with_defaults,
    steps_to_nodes,
    workflow_fields_check,
)

WORKFLOW_FIELDS = ("name", "description", "slug", "status", "settings", "input_schema", "tags")
# Read-only fields a client may send back from a GET; they are not part of what it changes.
IGNORED_FIELDS = ("workspace", "version", "created_by", "created_at", "updated_at", "deleted_at", "node_count")
FIELD_DEFAULTS = {"description": "", "slug": None, "status": Workflow.Status.DRAFT, "settings": {}, "input_schema": {}}

SLUG_TAKEN = "Another workflow of this workspace already uses this id."
NODES_AND_STEPS = "Send either nodes or steps, not both."
EDGES_WITHOUT_NODES = "Edges come with the nodes they join (send nodes too)."
UNKNOWN_FIELDS = "Unknown field."
VERSION_MISSING = "This workflow has no version {number}."
VERSION_CONFLICT = (
    "The workflow changed since you read it: it is at version {current} now, and your change was made to "
    'version {expected}. Load version {current} and make your change again (or send If-Match: "{current}").'
)


def _parse_body(data: Any, *, creating: bool) -> tuple[dict, list | None]:
    """Split a request body into workflow fields and raw nodes (None: leave the graph alone)."""
    if not isinstance(data, dict):
        raise ValidationError({"non_field_errors": ["The body must be a JSON object."]})
    unknown = set(data) - {*WORKFLOW_FIELDS, *IGNORED_FIELDS, "id", "nodes", "steps", "edges", "format"}
    if unknown:
        raise ValidationError({name: [UNKNOWN_FIELDS] for name in sorted(unknown)})
    fields = {name: data[name] for name in WORKFLOW_FIELDS if name in data}
    if creating and "id" in data and "slug" not in data:
        # Older clients name their workflows with a non-UUID `id`; it becomes the slug.
        fields["slug"] = str(data["id"])
    errors = workflow_fields_check(fields)
    if errors:
        raise ValidationError(errors)
    if "nodes" in data and "steps" in data:
        raise ValidationError({"steps": [NODES_AND_STEPS]})
    if "edges" in data and "nodes" not in data:
        raise ValidationError({"edges": [EDGES_WITHOUT_NODES]})
    if "steps" in data:
        return fields, steps_to_nodes(data["steps"])
    if "nodes" in data:
        return fields, nodes_from_document(data)
    return fields, None


def _tags_set(workflow: Workflow, tags: list[str]) -> None:
    wanted = list(dict.fromkeys(tag.strip() for tag in tags if tag.strip()))
    workflow.tag_set.exclude(name__in=wanted).delete()
    WorkflowTag.objects.bulk_create(
        [WorkflowTag(workflow=workflow, name=name) for name in wanted], ignore_conflicts=True
    )


def _save_fields(workflow: Workflow, fields: dict) -> None:
    for name, value in fields.items():
        if name != "tags":
            setattr(workflow, name, value)
    try:
        with transaction.atomic():
            workflow.save()
    except IntegrityError as error:
        raise ValidationError({"slug": [SLUG_TAKEN]}) from error


def _audit_state(workflow: Workflow, specs: list[dict]) -> dict:
    """What the audit trail compares before and after a change: the fields, the tags, the node keys."""
    return {
        **{name: getattr(workflow, name) for name in WORKFLOW_FIELDS if name != "tags"},
        "tags": sorted(workflow.tag_set.values_list("name", flat=True)),
        "nodes": [spec["key"] for spec in specs],
        "version": workflow.version,
    }


# A node's audit trail leaves out its position on the canvas: dragging a node is not a change worth a line.


def workflow_create(
    *,
    actor: User,
    workspace: Workspace,
    data: Any,
    note: str = "created",
    request: AnyRequest | None = None,
    action: str = "workflow.created",
    sibling_slugs: frozenset[str] = frozenset(),
) -> Workflow:
    """Create a workflow (and its nodes) from an API body, an export document or a `steps` list.

    `action` names the audit record (an import records `workflow.imported`); `sibling_slugs` are the
    slugs of workflows created in the same batch, which its nodes may name.
    """
    ensure_role(actor, workspace, Role.EDITOR)
    fields, raw_nodes = _parse_body(data, creating=True)
    if "name" not in fields:
        raise ValidationError({"name": ["This field is required."]})
    specs = specs_checked([] if raw_nodes is None else raw_nodes, settings=fields.get("settings", {}))
    own_slug = {fields["slug"]} if fields.get("slug") else set()
    workflow_references_check(workspace=workspace, specs=specs, slugs=own_slug | sibling_slugs)
    with transaction.atomic():
        workflow = Workflow(workspace=workspace, created_by=actor, **FIELD_DEFAULTS)
        _save_fields(workflow, fields)
        _tags_set(workflow, fields.get("tags", []))
        workflow_graph_save(workflow, specs)
        workflow_version_record(workflow, actor=actor, note=note)
        audit_record(
            action=action,
            actor=actor,
            workspace=workspace,
            target=workflow,
            changes=diff({}, _audit_state(workflow, specs)),
            request=request,
        )
        realtime.workflow_saved("workflow.created", workflow, actor)
    return workflow


def workflow_update(
    *,
    workflow: Workflow,
    actor: User,
    data: Any,
    partial: bool,
    expected_version: int | None = None,
    request: AnyRequest | None = None,
) -> Workflow:
    """PUT replaces the workflow's fields (name required); PATCH changes those given.

    The graph changes only when the body carries `nodes` (or `steps`); then it is replaced whole.
    With `expected_version` (the API's If-Match), a workflow that has moved on since the caller read
    it is not overwritten: Conflict, naming its current version.
    """
    ensure_role(actor, workflow.workspace, Role.EDITOR)
    fields, raw_nodes = _parse_body(data, creating=False)
    if not partial:
        if "name" not in fields:
            raise ValidationError({"name": ["This field is required."]})
        fields = {**FIELD_DEFAULTS, "slug": workflow.slug, "tags": [], **fields}
    with transaction.atomic():
        workflow = workflow_lock(workflow)
        if expected_version is not None and workflow.version != expected_version:
            conflict = Conflict(VERSION_CONFLICT.format(current=workflow.version, expected=expected_version))
            conflict.problem_members = {"version": workflow.version}
            raise conflict
        current_specs = workflow_specs(workflow)
        before = _audit_state(workflow, current_specs)
        settings = fields.get("settings", workflow.settings)
        specs = current_specs if raw_nodes is None else specs_checked(raw_nodes, settings=settings)
        if raw_nodes is not None:
            slug = fields.get("slug", workflow.slug)
            workflow_references_check(
                workspace=workflow.workspace,
                specs=specs,
                held=current_specs,
                workflow=workflow,
                slugs={slug} if slug else set(),
            )
        if raw_nodes is None and "settings" in fields:
            definition_check(specs, max_nodes=settings_with_defaults(settings)["max_nodes"])
        _save_fields(workflow, fields)
        if "tags" in fields:
            _tags_set(workflow, fields["tags"])
        if raw_nodes is not None:
            workflow_graph_save(workflow, specs)
        version = workflow_version_record(workflow, actor=actor, note="updated")
        changes = diff(before, _audit_state(workflow, specs))
        audit_record(
            action="workflow.updated",
            actor=actor,
            workspace=workflow.workspace,
            target=workflow,
            changes=changes,
            request=request,
        )
        if version is None and changes:  # a new version told them already
            realtime.workflow_saved("workflow.updated", workflow, actor)
    return workflow


def workflow_delete(*, workflow: Workflow, actor: User, request: AnyRequest | None = None) -> None:
    """Soft delete: the workflow disappears from every list and lookup until restored."""
    ensure_role(actor, workflow.workspace, Role.EDITOR)
    now = timezone.now()
    with transaction.atomic():
        if Workflow.objects.filter(pk=workflow.pk, deleted_at__isnull=True).update(deleted_at=now):
            audit_record(
                action="workflow.deleted",
                actor=actor,
                workspace=workflow.workspace,
                target=workflow,
                changes={"deleted_at": [None, now]},
                request=request,
            )
            realtime.workflow_event(
                "workflow.deleted",
                workspace_id=workflow.workspace_id,
                workflow_id=workflow.pk,
                actor=actor,
                name=workflow.name,
            )


def workflow_restore(*, workflow: Workflow, actor: User, request: AnyRequest | None = None) -> Workflow:
    ensure_role(actor, workflow.workspace, Role.ADMIN)
    deleted_at = workflow.deleted_at
    with transaction.atomic():
        Workflow.objects.filter(pk=workflow.pk).update(deleted_at=None, updated_at=timezone.now())
        workflow.refresh_from_db()
        if deleted_at is not None:
            audit_record(
                action="workflow.restored",
                actor=actor,
                workspace=workflow.workspace,
                target=workflow,
                changes={"deleted_at": [deleted_at, None]},
                request=request,
            )
            realtime.workflow_saved("workflow.restored", workflow, actor)
    return workflow


def workflow_version_restore(
    *, workflow: Workflow, actor: User, number: int, request: AnyRequest | None = None
) -> Workflow:
    """Make the definition equal to version `number` again, as a new version."""
    ensure_role(actor, workflow.workspace, Role.EDITOR)
    version = workflow.versions.filter(number=number).first()
    if version is None:
        raise ValidationError({"version": [VERSION_MISSING.format(number=number)]})
    snapshot = version.snapshot
    # A version saved before its input_schema was checked as it is now must not come back unchecked.
    errors = workflow_fields_check({"input_schema": snapshot["input_schema"]})
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        workflow = workflow_lock(workflow)
        current_specs = workflow_specs(workflow)
        before = _audit_state(workflow, current_specs)
        specs = specs_checked(nodes_from_document(snapshot), settings=snapshot["settings"])
        workflow_references_check(
            workspace=workflow.workspace,
            specs=specs,
            held=current_specs,
            workflow=workflow,
            slugs=workflow_slugs(workflow),
        )
        for name in ("name", "description", "settings", "input_schema"):
            setattr(workflow, name, snapshot[name])
        workflow.save()
        workflow_graph_save(workflow, specs)
        workflow_version_record(workflow, actor=actor, note=f"restored from version {number}")
        audit_record(
            action="workflow.updated",
            actor=actor,
            workspace=workflow.workspace,
            target=workflow,
            changes={**diff(before, _audit_state(workflow, specs)), "restored_version": [None, number]},
            request=request,
        )
    return workflow
