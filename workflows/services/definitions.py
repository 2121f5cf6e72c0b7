"""Every change to a workflow definition: workflows, nodes, edges, versions.

A change loads the definition as node specs, edits the specs, validates the whole graph
(`workflows.specs`), writes nodes and edges, and records a version if what a run would execute
changed. All of it in one transaction, under a row lock on the workflow so that concurrent edits
queue instead of interleaving.
"""

import json
import uuid
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.access import Role, ensure_role
from accounts.models import User, Workspace
from audit.services import AnyRequest, audit_record, audit_record_many, diff
from config.problems import Conflict
from workflows.models import Credential, Edge, Node, Workflow, WorkflowTag, WorkflowVersion
from workflows.selectors import workflow_specs, workflows_for_user
from workflows.specs import (
    EXPORT_FORMAT,
    NODE_VALUE_FIELDS,
    Errors,
    compact_depends_on,
    definition_check,
    node_spec_from_input,
    nodes_from_document,
    references_of,
    settings_with_defaults,
    snapshot_of,
    specs_from_input,
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
AMBIGUOUS_CONDITION = (
    "{key!r} is a condition whose branches lead to {children}; deleting it would lose which branch they follow. "
    "Re-wire or delete those nodes first."
)
AMBIGUOUS_FAN = (
    "{key!r} joins {parents} and fans out to {children}; it is unclear which parent each child should follow. "
    "Re-wire the children first."
)
VERSION_MISSING = "This workflow has no version {number}."
# One answer whether the object is in another workspace, deleted or never was: no existence leak.
UNKNOWN_CREDENTIAL = "No credential named {value!r} in this workspace."
UNKNOWN_WORKFLOW = "No workflow with the id or slug {value!r} in this workspace."


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


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


def _validated_specs(raw_nodes: list, *, settings: dict, base: list[dict] | None = None) -> list[dict]:
    specs = specs_from_input(raw_nodes, base=base)
    definition_check(specs, max_nodes=settings_with_defaults(settings)["max_nodes"])
    return specs


def _uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def workflow_references_check(
    *,
    workspace: Workspace,
    specs: list[dict],
    held: list[dict] | None = None,
    workflow: Workflow | None = None,
    slugs: set[str] | frozenset[str] = frozenset(),
) -> None:
    """Refuse nodes naming a credential or a workflow that this workspace does not have.

    Saving is where a reference to another workspace's object is caught (the run would refuse it
    too). The lookups are scoped to `workspace`, so one message serves "in another workspace",
    "deleted" (workflows are soft-deleted; credentials are removed) and "never existed". Two queries
    at most, one per kind of reference, whatever the number of nodes.

    What stays allowed: a reference the workflow already `held` before this save (its credential may
    since have been renamed or deleted; that is the run's to report, and it must not block editing
    the rest of the workflow), the workflow itself (`workflow`, by id; its slug is in `slugs`), and
    `slugs` of workflows created in the same save (an import batch). Template values are not
    references (see workflows.specs.references_of).
    """
    already = {(ref.kind, ref.value) for ref in references_of(held or [])}
    wanted = [ref for ref in references_of(specs) if (ref.kind, ref.value) not in already]
    if not wanted:
        return
    errors: Errors = {}

    names = {ref.value for ref in wanted if ref.kind == "credential"}
    if names:
        known = set(Credential.objects.filter(workspace=workspace, name__in=names).values_list("name", flat=True))
        for ref in wanted:
            if ref.kind == "credential" and ref.value not in known:
                errors.setdefault(ref.path, []).append(UNKNOWN_CREDENTIAL.format(value=ref.value))

    # Resolved as the run resolves them (workflows.engine.store.child_workflow): an id first, then a slug.
    workflow_refs = {ref.value for ref in wanted if ref.kind == "workflow"} - set(slugs)
    if workflow_refs:
        ids = {pk for pk in map(_uuid_or_none, workflow_refs) if pk is not None}
        if workflow is not None:
            ids.discard(workflow.pk)
        rows = Workflow.objects.filter(workspace=workspace, deleted_at__isnull=True)
        if workflow is not None:  # its slug may change in this very save: `slugs` holds the new one
            rows = rows.exclude(pk=workflow.pk)
        found = list(rows.filter(Q(pk__in=ids) | Q(slug__in=workflow_refs)).values_list("pk", "slug"))
        known_ids = {pk for pk, _ in found} | ({workflow.pk} if workflow is not None else set())
        known_slugs = {slug for _, slug in found if slug}
        for ref in wanted:
            if ref.kind != "workflow" or ref.value in slugs or ref.value in known_slugs:
                continue
            if _uuid_or_none(ref.value) not in known_ids:
                errors.setdefault(ref.path, []).append(UNKNOWN_WORKFLOW.format(value=ref.value))

    if errors:
        raise ValidationError(errors)


def _slugs(workflow: Workflow) -> set[str]:
    return {workflow.slug} if workflow.slug else set()


def _graph_save(workflow: Workflow, specs: list[dict], *, renamed: dict[str, str] | None = None) -> None:
    """Make the stored nodes and edges equal `specs`. Nodes keep their ids across edits (and renames)."""
    existing = {node.key: node for node in Node.objects.filter(workflow=workflow)}
    for old, new in (renamed or {}).items():
        existing[new] = existing.pop(old)
    kept, created = [], []
    for order, spec in enumerate(specs):
        node = existing.pop(spec["key"], None)
        values = {name: value for name, value in spec.items() if name != "depends_on"}
        if node is None:
            created.append(Node(workflow=workflow, order=order, **values))
        else:
            for name, value in values.items():
                setattr(node, name, value)
            node.order = order
            kept.append(node)
    Edge.objects.filter(workflow=workflow).delete()
    Node.objects.filter(pk__in=[node.pk for node in existing.values()]).delete()
    if kept:
        Node.objects.bulk_update(kept, [*NODE_VALUE_FIELDS, "order"])
    Node.objects.bulk_create(created)
    by_key = {node.key: node for node in [*kept, *created]}
    Edge.objects.bulk_create(
        [
            Edge(workflow=workflow, source=by_key[dep["node"]], target=by_key[spec["key"]], label=dep["when"])
            for spec in specs
            for dep in spec["depends_on"]
        ]
    )


def _fields_of(workflow: Workflow) -> dict:
    return {name: getattr(workflow, name) for name in ("name", "description", "settings", "input_schema")}


def workflow_version_record(workflow: Workflow, *, actor: User | None, note: str = "") -> WorkflowVersion | None:
    """Record a new version if the executable definition changed since the latest one."""
    snapshot = snapshot_of(_fields_of(workflow), workflow_specs(workflow))
    latest = workflow.versions.order_by("-number").first()
    if latest is not None and _canonical(latest.snapshot) == _canonical(snapshot):
        return None
    workflow.version = (latest.number if latest else 0) + 1
    workflow.save(update_fields=["version", "updated_at"])
    return WorkflowVersion.objects.create(
        workflow=workflow, number=workflow.version, snapshot=snapshot, created_by=actor, note=note[:200]
    )


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


def _locked(workflow: Workflow) -> Workflow:
    return Workflow.objects.select_for_update(of=("self",), no_key=True).select_related("workspace").get(pk=workflow.pk)


def _audit_state(workflow: Workflow, specs: list[dict]) -> dict:
    """What the audit trail compares before and after a change: the fields, the tags, the node keys."""
    return {
        **{name: getattr(workflow, name) for name in WORKFLOW_FIELDS if name != "tags"},
        "tags": sorted(workflow.tag_set.values_list("name", flat=True)),
        "nodes": [spec["key"] for spec in specs],
        "version": workflow.version,
    }


# A node's audit trail leaves out its position on the canvas: dragging a node is not a change worth a line.
NODE_AUDIT_IGNORED = ("position", "order")


def _node_state(spec: dict) -> dict:
    return {name: value for name, value in spec.items() if name not in NODE_AUDIT_IGNORED}


def _create(
    *,
    actor: User,
    workspace: Workspace,
    data: Any,
    note: str,
    action: str,
    request: AnyRequest | None,
    sibling_slugs: frozenset[str] = frozenset(),
) -> Workflow:
    ensure_role(actor, workspace, Role.EDITOR)
    fields, raw_nodes = _parse_body(data, creating=True)
    if "name" not in fields:
        raise ValidationError({"name": ["This field is required."]})
    specs = _validated_specs([] if raw_nodes is None else raw_nodes, settings=fields.get("settings", {}))
    own_slug = {fields["slug"]} if fields.get("slug") else set()
    workflow_references_check(workspace=workspace, specs=specs, slugs=own_slug | sibling_slugs)
    with transaction.atomic():
        workflow = Workflow(workspace=workspace, created_by=actor, **FIELD_DEFAULTS)
        _save_fields(workflow, fields)
        _tags_set(workflow, fields.get("tags", []))
        _graph_save(workflow, specs)
        workflow_version_record(workflow, actor=actor, note=note)
        audit_record(
            action=action,
            actor=actor,
            workspace=workspace,
            target=workflow,
            changes=diff({}, _audit_state(workflow, specs)),
            request=request,
        )
    return workflow


def workflow_create(
    *, actor: User, workspace: Workspace, data: Any, note: str = "created", request: AnyRequest | None = None
) -> Workflow:
    """Create a workflow (and its nodes) from an API body, an export document or a `steps` list."""
    return _create(actor=actor, workspace=workspace, data=data, note=note, action="workflow.created", request=request)


def workflow_update(
    *, workflow: Workflow, actor: User, data: Any, partial: bool, request: AnyRequest | None = None
) -> Workflow:
    """PUT replaces the workflow's fields (name required); PATCH changes those given.

    The graph changes only when the body carries `nodes` (or `steps`); then it is replaced whole.
    """
    ensure_role(actor, workflow.workspace, Role.EDITOR)
    fields, raw_nodes = _parse_body(data, creating=False)
    if not partial:
        if "name" not in fields:
            raise ValidationError({"name": ["This field is required."]})
        fields = {**FIELD_DEFAULTS, "slug": workflow.slug, "tags": [], **fields}
    with transaction.atomic():
        workflow = _locked(workflow)
        current_specs = workflow_specs(workflow)
        before = _audit_state(workflow, current_specs)
        settings = fields.get("settings", workflow.settings)
        specs = current_specs if raw_nodes is None else _validated_specs(raw_nodes, settings=settings)
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
            _graph_save(workflow, specs)
        workflow_version_record(workflow, actor=actor, note="updated")
        audit_record(
            action="workflow.updated",
            actor=actor,
            workspace=workflow.workspace,
            target=workflow,
            changes=diff(before, _audit_state(workflow, specs)),
            request=request,
        )
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
        workflow = _locked(workflow)
        current_specs = workflow_specs(workflow)
        before = _audit_state(workflow, current_specs)
        specs = _validated_specs(nodes_from_document(snapshot), settings=snapshot["settings"])
        workflow_references_check(
            workspace=workflow.workspace, specs=specs, held=current_specs, workflow=workflow, slugs=_slugs(workflow)
        )
        for name in ("name", "description", "settings", "input_schema"):
            setattr(workflow, name, snapshot[name])
        workflow.save()
        _graph_save(workflow, specs)
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


def node_append(*, workflow: Workflow, actor: User, data: Any, request: AnyRequest | None = None) -> Node:
    """Add a node; without `depends_on` it follows the current last node of the chain."""
    ensure_role(actor, workflow.workspace, Role.EDITOR)
    with transaction.atomic():
        workflow = _locked(workflow)
        base = workflow_specs(workflow)
        specs = _validated_specs([data], settings=workflow.settings, base=base)
        workflow_references_check(
            workspace=workflow.workspace, specs=specs, held=base, workflow=workflow, slugs=_slugs(workflow)
        )
        _graph_save(workflow, specs)
        workflow_version_record(workflow, actor=actor, note=f"node {specs[-1]['key']} added")
        node = workflow.nodes.get(key=specs[-1]["key"])
        audit_record(
            action="node.created",
            actor=actor,
            workspace=workflow.workspace,
            target=node,
            changes={**diff({}, _node_state(specs[-1])), "workflow": [None, str(workflow.pk)]},
            request=request,
        )
        return node


def node_update(*, node: Node, actor: User, data: Any, partial: bool, request: AnyRequest | None = None) -> Node:
    """Change one node. A new key is followed by every node that depended on the old one."""
    workflow = node.workflow
    ensure_role(actor, workflow.workspace, Role.EDITOR)
    if not isinstance(data, dict):
        raise ValidationError({"non_field_errors": ["The body must be a JSON object."]})
    with transaction.atomic():
        workflow = _locked(workflow)
        specs = workflow_specs(workflow)
        index = next(i for i, spec in enumerate(specs) if spec["key"] == node.key)
        current = specs[index]
        depends_on = compact_depends_on(current["depends_on"])
        # PATCH changes what it names; PUT replaces the node but keeps its key and wiring unless given.
        base = {**current, "depends_on": depends_on} if partial else {"key": current["key"], "depends_on": depends_on}
        raw = {**base, **data}
        others = specs[:index] + specs[index + 1 :]
        spec, errors = node_spec_from_input(raw, taken={s["key"] for s in others}, previous=None, label=node.key)
        if errors:
            raise ValidationError(errors)
        workflow_references_check(
            workspace=workflow.workspace,
            specs=[spec],
            held=specs,
            workflow=workflow,
            slugs=_slugs(workflow),
        )
        renamed = {}
        if spec["key"] != node.key:
            renamed = {node.key: spec["key"]}
            for other in others:
                for dep in other["depends_on"]:
                    if dep["node"] == node.key:
                        dep["node"] = spec["key"]
        specs[index] = spec
        definition_check(specs, max_nodes=settings_with_defaults(workflow.settings)["max_nodes"])
        _graph_save(workflow, specs, renamed=renamed)
        workflow_version_record(workflow, actor=actor, note=f"node {spec['key']} changed")
        node = workflow.nodes.get(key=spec["key"])
        changes = diff(_node_state(current), _node_state(spec))
        if changes:
            audit_record(
                action="node.updated",
                actor=actor,
                workspace=workflow.workspace,
                target=node,
                changes=changes,
                request=request,
            )
        return node


def node_delete(*, node: Node, actor: User, request: AnyRequest | None = None) -> None:
    """Remove a node and reconnect: its children follow its parents instead.

    Raises Conflict where that is ambiguous: a condition with children on its branches, or a node
    that joins several parents and fans out to several children.
    """
    workflow = node.workflow
    ensure_role(actor, workflow.workspace, Role.EDITOR)
    with transaction.atomic():
        workflow = _locked(workflow)
        specs = workflow_specs(workflow)
        removed = next(spec for spec in specs if spec["key"] == node.key)
        children = [spec for spec in specs if any(dep["node"] == node.key for dep in spec["depends_on"])]
        parents = removed["depends_on"]
        child_keys = ", ".join(repr(child["key"]) for child in children)
        if children and any(
            dep["when"] for child in children for dep in child["depends_on"] if dep["node"] == node.key
        ):
            raise Conflict(AMBIGUOUS_CONDITION.format(key=node.key, children=child_keys))
        if len(parents) > 1 and len(children) > 1:
            parent_keys = ", ".join(repr(dep["node"]) for dep in parents)
            raise Conflict(AMBIGUOUS_FAN.format(key=node.key, parents=parent_keys, children=child_keys))
        for child in children:
            kept = [dep for dep in child["depends_on"] if dep["node"] != node.key]
            inherited = [dep for dep in parents if dep["node"] not in {k["node"] for k in kept}]
            child["depends_on"] = kept + [dict(dep) for dep in inherited]
        specs = [spec for spec in specs if spec["key"] != node.key]
        _graph_save(workflow, specs)
        workflow_version_record(workflow, actor=actor, note=f"node {node.key} deleted")
        audit_record(
            action="node.deleted",
            actor=actor,
            workspace=workflow.workspace,
            target=node,
            changes={
                **diff({name: removed[name] for name in ("key", "type", "title")}, {}),
                "workflow": [str(workflow.pk), None],
            },
            request=request,
        )


def workflow_duplicate(*, workflow: Workflow, actor: User, request: AnyRequest | None = None) -> Workflow:
    """A copy in the same workspace, as a draft, named "<name> (copy)"."""
    document = workflow_export(workflow=workflow)
    document.update(name=f"{workflow.name} (copy)"[:200], status=Workflow.Status.DRAFT, slug=None)
    return workflow_create(
        actor=actor, workspace=workflow.workspace, data=document, note=f"copy of {workflow.pk}", request=request
    )


def workflow_export(*, workflow: Workflow, actor: User | None = None, request: AnyRequest | None = None) -> dict:
    """A self-contained document: no ids, no secrets (credentials are referenced by name).

    With an `actor` (someone taking the definition away, not an internal copy) the export is audited.
    """
    snapshot = snapshot_of(_fields_of(workflow), workflow_specs(workflow))
    if actor is not None:
        audit_record(
            action="workflow.exported", actor=actor, workspace=workflow.workspace, target=workflow, request=request
        )
    return {
        "format": EXPORT_FORMAT,
        "slug": workflow.slug,
        "status": workflow.status,
        "tags": sorted(tag.name for tag in workflow.tag_set.all()),
        **snapshot,
    }


def workflows_import(
    *, actor: User, workspace: Workspace, documents: Any, request: AnyRequest | None = None
) -> list[Workflow]:
    """Create one workflow per export document, all or none. Errors are keyed by document index."""
    batch = documents if isinstance(documents, list) else [documents]
    if not batch:
        raise ValidationError({"non_field_errors": ["Nothing to import."]})
    # Documents of one batch may name each other by slug (an export of a workflow and its sub-workflows).
    sibling_slugs = frozenset(
        document["slug"] for document in batch if isinstance(document, dict) and isinstance(document.get("slug"), str)
    )
    created = []
    with transaction.atomic():
        for index, document in enumerate(batch):
            if not isinstance(document, dict) or document.get("format") != EXPORT_FORMAT:
                raise ValidationError({f"{index}.format": [f"Expected an export document ({EXPORT_FORMAT})."]})
            try:
                created.append(
                    _create(
                        actor=actor,
                        workspace=workspace,
                        data=document,
                        note="imported",
                        action="workflow.imported",
                        request=request,
                        sibling_slugs=sibling_slugs,
                    )
                )
            except ValidationError as error:
                raise ValidationError(
                    {f"{index}.{field}": messages for field, messages in error.message_dict.items()}
                    if len(batch) > 1
                    else error.message_dict
                ) from error
    return created


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
        records = []
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
        audit_record_many(records=records, actor=actor, request=request)
    return len(visible)


def _tags_by_workflow(workflow_ids: list) -> dict:
    tags: dict = {}
    for workflow_id, name in WorkflowTag.objects.filter(workflow_id__in=workflow_ids).values_list(
        "workflow_id", "name"
    ):
        tags.setdefault(workflow_id, []).append(name)
    return {workflow_id: sorted(names) for workflow_id, names in tags.items()}
