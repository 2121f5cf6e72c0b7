"""One attempt of a node: what it may see, and running it.

`context_data` reads under the run's lock (in the claim's transaction); `run_node` needs no lock and
no transaction: a slow node runs between the claim and the record, heart-beating meanwhile.
"""

import logging
import time
from datetime import datetime

from django.db import DatabaseError
from django.utils import timezone

from workflows.engine import budgets, snapshot, store
from workflows.engine.deadlines import STEP_TIMED_OUT
from workflows.engine.errors import StepError, TransientError
from workflows.engine.liveness import DeltaStream
from workflows.engine.nodes.base import NodeResult, StepContext, Suspend
from workflows.engine.nodes.registry import NODE_TYPES
from workflows.engine.transition import Transition
from workflows.models import Run, StepRun

logger = logging.getLogger(__name__)

# Node types whose steps start child runs (and see them in their context).
PARENT_TYPES = ("loop", "subworkflow")


def context_data(tx: Transition, run: Run, step: StepRun) -> dict:
    """Everything the node may see: succeeded outputs, run facts and finished children."""
    nodes = {}
    for key, other in tx.steps(run).items():
        if other.status != StepRun.Status.SUCCEEDED:
            continue
        entry = {"output": other.output}
        if isinstance(other.output, dict):
            entry.update(content=other.output.get("content"), title=other.output.get("title"))
        nodes[key] = entry
    node_type = NODE_TYPES[step.node_type]
    return {
        "documents": _ancestor_documents(tx, run, step) if node_type.uses_context else [],
        "expressions": {
            "input": run.input,
            "nodes": nodes,
            "run": {"id": str(run.pk), "trigger": run.trigger, "started_at": iso(run.started_at)},
            "workflow": {
                "id": str(run.workflow_id),
                "name": run.version.snapshot["name"],
                "version": run.version.number,
            },
        },
        "children": store.finished_children(step) if step.node_type in PARENT_TYPES else [],
        "node": snapshot.node(run, step.node_key),
    }


def _ancestor_documents(tx: Transition, run: Run, step: StepRun) -> list[dict]:
    """The documents (outputs with a content) of the step's succeeded ancestors, in chain order."""
    documents = []
    steps = tx.steps(run)
    for key in snapshot.ancestors_in_order(run, step.node_key):
        output = steps[key].output if steps[key].status == StepRun.Status.SUCCEEDED else None
        if isinstance(output, dict) and isinstance(output.get("content"), str):
            documents.append(
                {
                    "node_key": key,
                    "title": output.get("title") or key,
                    "content": output["content"],
                    "document_id": output.get("document_id"),
                }
            )
    return documents


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def run_node(run: Run, step: StepRun, data: dict) -> tuple[dict | None, NodeResult | Suspend | StepError]:
    """Render the node's inputs and execute it; every failure comes back as a StepError."""
    node = data["node"]
    node_type = NODE_TYPES[node["type"]]
    # A resumed attempt has what is left of its time, not its whole timeout again.
    remaining = (step.deadline_at - timezone.now()).total_seconds() if step.deadline_at else None
    deadline = time.monotonic() + remaining if remaining is not None else None
    context = StepContext(
        run_id=str(run.pk),
        step_id=str(step.pk),
        node_key=step.node_key,
        attempt=step.attempt,
        workspace_id=str(run.workspace_id),
        expressions=data["expressions"],
        state=dict(step.state),
        children=data["children"],
        deadline=deadline,
        documents=data["documents"],
        stream=DeltaStream(run.pk, step) if node_type.uses_context and not node_type.inline else None,
    )
    prepared: dict | None = None
    reservation = budgets.Reservation([])
    try:
        prepared = node_type.prepare(node, context)
        # The estimate builds the request (and reads the credential) again: only when a budget applies.
        in_force = budgets.applicable(run) if node_type.spends else []
        estimate = node_type.spending_estimate(prepared, context) if in_force else None
        if estimate is not None:
            reservation = budgets.reserve(run, step, in_force, budgets.Spending(*estimate))
        result: NodeResult | Suspend | StepError = node_type.execute(prepared, context)
        if context.stream is not None:
            context.stream.flush()
    except StepError as error:
        result = error
    except Exception as error:
        logger.exception("step raised", extra={"run": str(run.pk), "step": step.node_key})
        result = unexpected(error)
    if reservation.ids:
        _settled(run, node_type, reservation, result)
    if deadline is not None and time.monotonic() > deadline and not isinstance(result, StepError):
        result = TransientError(STEP_TIMED_OUT.format(seconds=node.get("timeout")))
    return prepared, result


def _settled(run: Run, node_type, reservation: budgets.Reservation, result) -> None:
    """The budgets count what the call spent (nothing when it failed) instead of its reservation; a
    threshold crossed is counted for analytics once the budgets' transaction has committed."""
    spent = node_type.spent(result.usage) if isinstance(result, NodeResult) else None
    try:
        crossings = budgets.settle(reservation, budgets.Spending(*spent) if spent else None)
    except DatabaseError:
        # The reservation stays until recovery releases it: the step's outcome is not lost for it.
        logger.exception("budget usage not settled", extra={"run": str(run.pk)})
        return
    for crossing in crossings:
        budgets.threshold_counted(run, crossing)


def unexpected(error: Exception) -> TransientError:
    """A bug or an unexpected library error, as a step error: recorded as itself, retried as transient.

    Type and message only: workspace members read step errors, and a traceback shows the server's
    paths and code. The callers have logged it with its traceback.
    """
    return TransientError(f"{type(error).__name__}: {error}")
