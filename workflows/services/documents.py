"""Documents: written by the scheduler when a document step succeeds; read through the API."""

from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Max

from workflows.models import Document, Run, StepRun

# Two runs of one workflow may finish the same node at once; each takes the next version number.
VERSION_RACE_ATTEMPTS = 5


def document_record(*, run: Run, step: StepRun, document: dict) -> Document:
    """Store a step's generated document as the next version for its (workflow, node key).

    Called inside the scheduler's transaction that records the step's success, so the document
    exists exactly when the step succeeded. `document["source_ids"]` are the context documents.
    """
    previous = Document.objects.filter(run=run, node_key=step.node_key).order_by("-version").first()
    fields = {
        "workspace_id": run.workspace_id,
        "workflow_id": run.workflow_id,
        "run": run,
        "step": step,
        "node_key": step.node_key,
        "previous": previous,
        "title": (document.get("title") or step.node_key)[:1000],
        "content": document.get("content") or "",
        "format": document.get("format") or Document.Format.MARKDOWN,
        "provider": document.get("provider") or "template",
        "model": document.get("model") or "",
        "tokens_in": document.get("tokens_in") or 0,
        "tokens_out": document.get("tokens_out") or 0,
        "cost": Decimal(str(document.get("cost") or 0)),
        "latency_ms": document.get("latency_ms") or 0,
        "metadata": document.get("metadata") or {},
    }
    versions = Document.objects.filter(workflow_id=run.workflow_id, node_key=step.node_key)
    for attempt in range(VERSION_RACE_ATTEMPTS):
        version = (versions.aggregate(latest=Max("version"))["latest"] or 0) + 1
        try:
            with transaction.atomic():
                created = Document.objects.create(version=version, **fields)
            break
        except IntegrityError:
            if attempt + 1 == VERSION_RACE_ATTEMPTS:
                raise
    sources = Document.objects.filter(workspace_id=run.workspace_id, pk__in=document.get("source_ids") or [])
    created.sources.set(sources)
    return created
