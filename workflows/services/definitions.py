"""What every change to a workflow definition shares: checked node specs, the graph written to match
them, and a version recorded when what a run would execute changed.

A change (workflows.services.workflows, .nodes) loads the definition as node specs, edits the specs,
validates the whole graph (`workflows.specs`), writes nodes and edges, and records a version. All of it
in one transaction, under a row lock on the workflow (`workflow_lock`) so that concurrent edits queue
instead of interleaving.
"""

import json
from typing import Any

from accounts.models import User
from workflows import realtime
from workflows.models import Edge, Node, Workflow, WorkflowVersion
from workflows.selectors import workflow_specs
from workflows.specs import NODE_VALUE_FIELDS, definition_check, settings_with_defaults, snapshot_of, specs_from_input


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def specs_checked(raw_nodes: list, *, settings: dict, base: list[dict] | None = None) -> list[dict]:
    """Node specs for `raw_nodes` (added after `base`), the whole graph checked; ValidationError names what is wrong."""
    specs = specs_from_input(raw_nodes, base=base)
    definition_check(specs, max_nodes=settings_with_defaults(settings)["max_nodes"])
    return specs


def workflow_lock(workflow: Workflow) -> Workflow:
    """The workflow read again under a row lock held until the transaction ends: concurrent edits queue."""
    return Workflow.objects.select_for_update(of=("self",), no_key=True).select_related("workspace").get(pk=workflow.pk)


def workflow_slugs(workflow: Workflow) -> set[str]:
    """Its own slug, if any: its nodes may name the workflow itself (workflow_references_check)."""
    return {workflow.slug} if workflow.slug else set()


def workflow_graph_save(workflow: Workflow, specs: list[dict], *, renamed: dict[str, str] | None = None) -> None:
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


def snapshot_fields(workflow: Workflow) -> dict:
    return {name: getattr(workflow, name) for name in ("name", "description", "settings", "input_schema")}


def workflow_version_record(workflow: Workflow, *, actor: User | None, note: str = "") -> WorkflowVersion | None:
    """Record a new version if the executable definition changed since the latest one. A version after
    the first tells the workflow's open pages (`workflow.updated`: an editor's next save would conflict)."""
    snapshot = snapshot_of(snapshot_fields(workflow), workflow_specs(workflow))
    latest = workflow.versions.order_by("-number").first()
    if latest is not None and _canonical(latest.snapshot) == _canonical(snapshot):
        return None
    workflow.version = (latest.number if latest else 0) + 1
    workflow.save(update_fields=["version", "updated_at"])
    if latest is not None:
        realtime.workflow_saved("workflow.updated", workflow, actor)
    return WorkflowVersion.objects.create(
        workflow=workflow, number=workflow.version, snapshot=snapshot, created_by=actor, note=note[:200]
    )
