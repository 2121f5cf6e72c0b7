"""Workflows in and out as export documents: export, import (all or none), and duplicate, an export
imported back."""

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import User, Workspace
from audit.services import AnyRequest, audit_record
from workflows.models import Workflow
from workflows.selectors import workflow_specs
from workflows.services.definitions import snapshot_fields
from workflows.services.workflows import workflow_create
from workflows.specs import EXPORT_FORMAT, snapshot_of


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
    snapshot = snapshot_of(snapshot_fields(workflow), workflow_specs(workflow))
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
                    workflow_create(
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
