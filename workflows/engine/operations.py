"""What people do to runs and steps: cancel, retry, regenerate a document, decide an approval (with
edits of the documents under review), ask for changes to them.

The services (`workflows.services.runs`) check permissions and preconditions, open the transition,
lock the run and call these; each returns the messages to send once the transition committed.
"""

from workflows.engine import snapshot, state, store
from workflows.engine.dispatch import Dispatch
from workflows.engine.errors import PermanentError
from workflows.engine.nodes.base import PROMPT_OVERRIDE, REVIEW_COMMENT, REVIEW_DRAFT
from workflows.engine.transition import Transition
from workflows.models import Run, StepRun

Status = StepRun.Status
REOPENED_FIELDS = ("status", "output", "error", "state", "not_before", "finished_at")
# The provider of a document a person wrote (an edit made while reviewing it).
HUMAN = "human"


def cancel(tx: Transition, run: Run) -> None:
    """Stop scheduling; every open step is cancelled and a late result from a running one is dropped."""
    state.finish_run(tx, run, Run.Status.CANCELLED)


def _reopen_steps(tx: Transition, run: Run, keys: set[str]) -> None:
    for key in keys:
        step = tx.steps(run)[key]
        step.status, step.output, step.error, step.state = Status.PENDING, None, None, {}
        step.not_before = step.finished_at = None
        tx.save_step(run, step, *REOPENED_FIELDS)


def _reopen(tx: Transition, run: Run, keys: set[str]) -> None:
    """Put the steps `keys` back to pending and the run to pending, to be advanced again."""
    _reopen_steps(tx, run, keys)
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


def decide(
    tx: Transition,
    run: Run,
    step: StepRun,
    *,
    approved: bool,
    by: str,
    comment: str,
    edits: dict[str, str] | None = None,
) -> list[Dispatch]:
    """Settle a waiting approval step.

    `edits` ({node key: content}, approving only; the caller checked that the steps are under review
    and succeeded) become new versions of those documents, written by `by`: the steps' outputs then
    point at them, so everything after the approval reads the edited text.
    """
    decision = {"approved": approved, "by": by, "comment": comment}
    if edits:
        decision["edits"] = {
            key: _edit(tx, run, key, content, by=by, approval=step.node_key) for key, content in edits.items()
        }
    step.state = {**step.state, "decision": decision}
    if approved:
        state.finish_step(tx, run, step, Status.SUCCEEDED, output=decision)
        return state.advance(tx, run)
    error = PermanentError(f"Rejected by {by}.", details={"decision": decision})
    return state.fail_or_retry(tx, run, step, snapshot.node(run, step.node_key), error) + state.advance(tx, run)


def _edit(tx: Transition, run: Run, key: str, content: str, *, by: str, approval: str) -> dict:
    """A person's version of a document step's document, replacing it in the step's output."""
    step = tx.steps(run)[key]
    generated = step.output
    document = store.document_insert(
        run=run,
        step=step,
        document={
            "title": generated.get("title") or key,
            "content": content,
            "format": generated.get("format"),
            "provider": HUMAN,
            "metadata": {"edited_by": by, "approval": approval, "edited_from": generated.get("document_id")},
        },
    )
    edited = {"document_id": str(document.pk), "version": document.version}
    step.output = {**generated, "content": content, **edited, "edited_by": by}
    tx.save_step(run, step, "output")
    data = {**edited, "title": document.title, "edited_by": by}
    tx.emit(run, "document.created", step=key, data=data)
    return edited


def request_changes(
    tx: Transition, run: Run, step: StepRun, *, keys: list[str], by: str, comment: str
) -> list[Dispatch]:
    """Send a waiting approval's documents back: the document steps `keys` run again, the model seeing
    the draft under review and `comment` after their prompts, then every step between them and the
    approval, then the approval waits again. Steps on other branches keep their outputs."""
    approval_ancestors = set(snapshot.ancestors_in_order(run, step.node_key))
    between = {later for key in keys for later in snapshot.descendants(run, key)} & approval_ancestors
    reopened = {*keys, *between, step.node_key}
    drafts = {key: (tx.steps(run)[key].output or {}).get("content") or "" for key in keys}
    _reopen_steps(tx, run, reopened)
    for key in keys:
        document_step = tx.steps(run)[key]
        document_step.state = {REVIEW_COMMENT: comment, REVIEW_DRAFT: drafts[key]}
    data = {"steps": sorted(reopened), "documents": list(keys), "by": by, "comment": comment}
    tx.emit(run, "run.changes_requested", step=step.node_key, data=data)
    return state.advance(tx, run)
