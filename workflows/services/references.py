"""The check that a definition names only credentials and workflows of its own workspace."""

import uuid

from django.core.exceptions import ValidationError
from django.db.models import Q

from accounts.models import Workspace
from workflows.models import Credential, Workflow
from workflows.specs import Errors, references_of

# One answer whether the object is in another workspace, deleted or never was: no existence leak.
UNKNOWN_CREDENTIAL = "No credential named {value!r} in this workspace."
UNKNOWN_WORKFLOW = "No workflow with the id or slug {value!r} in this workspace."


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
