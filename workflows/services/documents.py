"""Documents: written by the scheduler when a document step succeeds; read through the API."""

from decimal import Decimal

from django.db import connection
from django.db.models import Max

from workflows.models import Document, Run, StepRun

# The first key of the two-key advisory locks that serialize version numbering (a key space of its own).
VERSION_LOCK_CLASS = 0x646F63  # "doc"


def document_record(*, run: Run, step: StepRun, document: dict) -> Document:
    """Store a step's generated document as the next version for its (workflow, node key).

    Called inside the scheduler's transaction that records the step's success, so the document
    exists exactly when the step succeeded; concurrent writers of the same (workflow, node key) wait
    for it to end (see `_lock_versions`). `document["source_ids"]` are the context documents.
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
    _lock_versions(workflow_id=run.workflow_id, node_key=step.node_key)
    versions = Document.objects.filter(workflow_id=run.workflow_id, node_key=step.node_key)
    version = (versions.aggregate(latest=Max("version"))["latest"] or 0) + 1
    created = Document.objects.create(version=version, **fields)
    sources = Document.objects.filter(workspace_id=run.workspace_id, pk__in=document.get("source_ids") or [])
    created.sources.set(sources)
    return created


def _lock_versions(*, workflow_id, node_key: str) -> None:
    """Take the lock that numbers the documents of (workflow, node key), until this transaction ends.

    Runs of one workflow finish the same node at once. Reading MAX(version) and retrying on the
    unique constraint does not converge: the read cannot see the other writers' uncommitted rows,
    so under a burst every writer collides again and again. Behind a lock per (workflow, node key),
    taken before the read, the read (a new snapshot under READ COMMITTED) sees every version
    committed so far, and the number is right the first time. An advisory lock needs no row to
    exist, leaves other nodes and workflows alone and is released with the transaction.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [VERSION_LOCK_CLASS, f"{workflow_id}:{node_key}"]
        )
