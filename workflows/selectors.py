"""Reads used by more than one caller: the API, the admin, commands and services."""

import uuid

from django.db.models import Count, OuterRef, Prefetch, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404

from accounts.access import Role, ensure_role, workspaces_for_user
from accounts.models import User
from workflows.events import envelope
from workflows.fingerprints import (
    NO_SUCH_RUN,
    NO_SUCH_WORKFLOW,
    one_snapshot,
    run_fingerprint,
    with_row_fingerprint,
    workflow_fingerprint,
)
from workflows.graph import topological_order
from workflows.models import Document, Edge, Node, Run, RunEvent, Workflow
from workflows.specs import NODE_VALUE_FIELDS, compact_depends_on

NO_SUCH_NODE = "No such node."
NO_SUCH_DOCUMENT = "No such document."


def workflows_for_user(user: User, *, include_deleted: bool = False) -> QuerySet[Workflow]:
    workflows = Workflow.objects.filter(workspace__in=workspaces_for_user(user))
    return workflows if include_deleted else workflows.filter(deleted_at__isnull=True)


def workflow_list(user: User) -> QuerySet[Workflow]:
    return with_list_data(workflows_for_user(user))


def with_list_data(workflows: QuerySet[Workflow]) -> QuerySet[Workflow]:
    """What the workflow serializers show besides the row: creator, tags (`tag_list`), node count.

    The node count is a subquery per row rather than a join and GROUP BY, so that a page's count
    query leaves it out; the tags go to a list attribute, which spares Django a manager per row.
    """
    node_count = Node.objects.filter(workflow=OuterRef("pk")).order_by().values("workflow").annotate(n=Count("*"))
    return (
        workflows.select_related("created_by")
        .prefetch_related(Prefetch("tag_set", to_attr="tag_list"))
        .annotate(node_count=Coalesce(Subquery(node_count.values("n")), 0))
    )


def workflow_get(
    user: User,
    workflow_id,
    *,
    minimum: str = Role.VIEWER,
    include_deleted: bool = False,
) -> Workflow:
    """The workflow if `user` holds at least `minimum` in its workspace; Http404 hides the rest."""
    try:
        workflow = Workflow.objects.select_related("workspace").get(pk=uuid.UUID(str(workflow_id)))
    except (ValueError, Workflow.DoesNotExist) as error:
        raise Http404(NO_SUCH_WORKFLOW) from error
    if workflow.is_deleted and not include_deleted:
        raise Http404(NO_SUCH_WORKFLOW)
    ensure_role(user, workflow.workspace, minimum, not_found=NO_SUCH_WORKFLOW)
    return workflow


def workflow_display_and_fingerprint(user: User, workflow_id) -> tuple[Workflow, str]:
    """The workflow loaded for display, with its nodes (`ordered_nodes`), and its fingerprint
    (workflows.fingerprints), read in one snapshot of the database: the digest is of the state loaded."""
    with one_snapshot():
        fingerprint = workflow_fingerprint(user, workflow_id)
        workflow = with_list_data(Workflow.objects.filter(pk=workflow_id)).get()
        workflow.ordered_nodes = workflow_nodes(workflow)
    return workflow, fingerprint


def workflow_rows_for_display(workflow_ids: list) -> list[Workflow]:
    """The workflows loaded for their list rows (with_list_data), each with its `row_fingerprint`, read
    in one snapshot: the digests are of the states loaded. Not authorized: for ids that a query of
    the caller's workflows gave."""
    with one_snapshot():
        return list(with_row_fingerprint(with_list_data(Workflow.objects.filter(pk__in=workflow_ids))))


def node_get(user: User, node_id, *, minimum: str = Role.VIEWER) -> Node:
    try:
        node = Node.objects.select_related("workflow__workspace").get(pk=uuid.UUID(str(node_id)))
    except (ValueError, Node.DoesNotExist) as error:
        raise Http404(NO_SUCH_NODE) from error
    if node.workflow.is_deleted:
        raise Http404(NO_SUCH_NODE)
    ensure_role(user, node.workflow.workspace, minimum, not_found=NO_SUCH_NODE)
    return node


def workflow_nodes(workflow: Workflow) -> list[Node]:
    """Nodes in topological order (ties by `order`), each with `depends_on` in the clients' form."""
    nodes = list(workflow.nodes.all())
    edges = list(Edge.objects.filter(workflow=workflow).values_list("source__key", "target__key", "label"))
    by_key = {node.key: node for node in nodes}
    for node in nodes:
        node.depends_on = compact_depends_on(
            [{"node": source, "when": label} for source, target, label in edges if target == node.key]
        )
    ordered = topological_order([node.key for node in nodes], [(source, target) for source, target, _ in edges])
    return [by_key[key] for key in ordered]


def workflow_specs(workflow: Workflow) -> list[dict]:
    """The stored definition as node specs (see workflows.specs), in topological order."""
    return [
        {
            **{name: getattr(node, name) for name in NODE_VALUE_FIELDS},
            "depends_on": [dep if isinstance(dep, dict) else {"node": dep, "when": ""} for dep in node.depends_on],
        }
        for node in workflow_nodes(workflow)
    ]


def runs_for_user(user: User) -> QuerySet[Run]:
    return Run.objects.filter(workspace__in=workspaces_for_user(user)).select_related("version", "created_by")


def run_get(user: User, run_id, *, minimum: str = Role.VIEWER) -> Run:
    try:
        run = Run.objects.select_related("workspace", "version", "workflow", "created_by").get(
            pk=uuid.UUID(str(run_id))
        )
    except (ValueError, Run.DoesNotExist) as error:
        raise Http404(NO_SUCH_RUN) from error
    ensure_role(user, run.workspace, minimum, not_found=NO_SUCH_RUN)
    return run


def run_display_and_fingerprint(user: User, run_id) -> tuple[Run, str]:
    """The run loaded for display, with its steps, and its fingerprint (workflows.fingerprints), read in
    one snapshot of the database: the digest is of the state loaded."""
    with one_snapshot():
        fingerprint = run_fingerprint(user, run_id)
        run = Run.objects.select_related("version", "created_by").prefetch_related("steps").get(pk=run_id)
    return run, fingerprint


def documents_for_user(user: User) -> QuerySet[Document]:
    return Document.objects.filter(workspace__in=workspaces_for_user(user)).select_related("workflow")


def document_get(user: User, document_id) -> Document:
    try:
        document = Document.objects.select_related("workspace", "workflow").get(pk=uuid.UUID(str(document_id)))
    except (ValueError, Document.DoesNotExist) as error:
        raise Http404(NO_SUCH_DOCUMENT) from error
    ensure_role(user, document.workspace, Role.VIEWER, not_found=NO_SUCH_DOCUMENT)
    return document


def document_version_before(document: Document) -> Document | None:
    """The version a document is compared with by default: the one it replaced in its run, else the
    latest earlier version of its node (written by an earlier run)."""
    if document.previous_id is not None:
        return Document.objects.get(pk=document.previous_id)
    earlier = Document.objects.filter(
        workflow_id=document.workflow_id, node_key=document.node_key, version__lt=document.version
    )
    return earlier.order_by("-version").first()


def run_event_envelopes(run_id, after: int, *, limit: int = 500, since=None, before: int | None = None) -> list[dict]:
    """The run's logged events after seq `after` (and before `before`, created since `since`) as envelopes."""
    run = Run.objects.filter(pk=run_id).only("id", "workspace_id", "workflow_id").first()
    if run is None:
        return []
    events = RunEvent.objects.filter(run_id=run_id, seq__gt=after)
    if before is not None:
        events = events.filter(seq__lt=before)
    if since is not None:
        events = events.filter(created_at__gte=since)
    return [envelope(event, run) for event in events.order_by("seq")[:limit]]
