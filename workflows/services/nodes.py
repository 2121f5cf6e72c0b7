"""One node at a time: append, update (a new key is followed by the nodes that depended on the old one),
delete (its children follow its parents)."""

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.access import Role, ensure_role
from accounts.models import User
from audit.services import AnyRequest, audit_record, diff
from core.problems import Conflict
from workflows.models import Node, Workflow
from workflows.selectors import workflow_specs
from workflows.services.definitions import (
    specs_checked,
    workflow_graph_save,
    workflow_lock,
    workflow_slugs,
    workflow_version_record,
)
from workflows.services.references import workflow_references_check
from workflows.specs import compact_depends_on, definition_check, node_spec_from_input, settings_with_defaults

AMBIGUOUS_CONDITION = (
    "{key!r} is a condition whose branches lead to {children}; deleting it would lose which branch they follow. "
    "Re-wire or delete those nodes first."
)
AMBIGUOUS_FAN = (
    "{key!r} joins {parents} and fans out to {children}; it is unclear which parent each child should follow. "
    "Re-wire the children first."
)
# A node's audit trail leaves out its position on the canvas: dragging a node is not a change worth a line.
NODE_AUDIT_IGNORED = ("position", "order")


def _node_state(spec: dict) -> dict:
    return {name: value for name, value in spec.items() if name not in NODE_AUDIT_IGNORED}


def node_append(*, workflow: Workflow, actor: User, data: Any, request: AnyRequest | None = None) -> Node:
    """Add a node; without `depends_on` it follows the current last node of the chain."""
    ensure_role(actor, workflow.workspace, Role.EDITOR)
    with transaction.atomic():
        workflow = workflow_lock(workflow)
        base = workflow_specs(workflow)
        specs = specs_checked([data], settings=workflow.settings, base=base)
        workflow_references_check(
            workspace=workflow.workspace, specs=specs, held=base, workflow=workflow, slugs=workflow_slugs(workflow)
        )
        workflow_graph_save(workflow, specs)
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
        workflow = workflow_lock(workflow)
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
            slugs=workflow_slugs(workflow),
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
        workflow_graph_save(workflow, specs, renamed=renamed)
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
        workflow = workflow_lock(workflow)
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
        workflow_graph_save(workflow, specs)
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
