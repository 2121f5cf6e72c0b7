"""What people do to runs and steps: cancel, retry, regenerate a document, decide an approval.

The services (`workflows.services.runs`) check permissions and preconditions, open the transition,
lock the run and call these; each returns the messages to send once the transition committed.
"""

from workflows.engine import snapshot, state
from workflows.engine.dispatch import Dispatch
from workflows.engine.errors import PermanentError
from workflows.engine.nodes.base import PROMPT_OVERRIDE
from workflows.engine.transition import Transition
from workflows.models import Run, StepRun

Status = StepRun.Status
REOPENED_FIELDS = ("status", "output", "error", "state", "not_before", "finished_at")


def cancel(tx: Transition, run: Run) -> None:
    """Stop scheduling; every open step is cancelled and a late result from a running one is dropped."""
    state.finish_run(tx, run, Run.Status.CANCELLED)


def _reopen(tx: Transition, run: Run, keys: set[str]) -> None:
    """Put the steps `keys` back to pending and the run to pending, to be advanced again."""
    for key in keys:
        step = tx.steps(run)[key]
        step.status, step.output, step.error, step.state = Status.PENDING, None, None, {}
        step.not_before = step.finished_at = None
        tx.save_step(run, step, *REOPENED_FIELDS)
    run.status = Run.Status.PENDING
    run.finished_at = None
    run.error = None
    run.output = None
    tx.save(run, "status", "finished_at", "error", "output")


def retry(tx: Transition, run: Run) -> list[Dispatch]:
    """Run again what failed, was cancelled or never ran; succeeded steps keep their outputs."""
    _reopen(tx, run, {key for key, step in tx.steps(run).items() if step.status != Status.SUCCEEDED})
    tx.emit(run, "run.retried")
    return state.advance(tx, run)


def regenerate(tx: Transition, run: Run, step: StepRun, *, prompt: str | None, cascade: bool) -> list[Dispatch]:
    """Run a finished run's document step again, for a new version; with `cascade`, its descendants too.

    The other steps keep their outputs. `prompt` replaces the node's prompt for this step only (kept
    in its state, where the document node looks for it).
    """
    keys = {step.node_key, *(snapshot.descendants(run, step.node_key) if cascade else ())}
    _reopen(tx, run, keys)
    if prompt is not None:
        step.state = {PROMPT_OVERRIDE: prompt}
    tx.emit(run, "run.regenerating", step=step.node_key, data={"steps": sorted(keys), "cascade": cascade})
    return state.advance(tx, run)


def refuse_trigger(tx: Transition, run: Run, entry: dict) -> None:
    """Note on a finished run that an event trigger following it did not start, once per trigger
    (a redelivered message adds nothing); under the run's lock, so concurrent refusals append."""
    if any(noted.get("trigger") == entry["trigger"] for noted in run.refused_triggers):
        return
    run.refused_triggers = [*run.refused_triggers, entry]
    tx.save(run, "refused_triggers")


def decide(tx: Transition, run: Run, step: StepRun, *, approved: bool, by: str, comment: str) -> list[Dispatch]:
    """Settle a waiting approval step."""
    decision = {"approved": approved, "by": by, "comment": comment}
    step.state = {**step.state, "decision": decision}
    if approved:
        state.finish_step(tx, run, step, Status.SUCCEEDED, output=decision)
        return state.advance(tx, run)
    error = PermanentError(f"Rejected by {by}.", details={"decision": decision})
    return state.fail_or_retry(tx, run, step, snapshot.node(run, step.node_key), error) + state.advance(tx, run)
