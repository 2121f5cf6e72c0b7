"""A transition: one transaction's changes to runs, written together just before it commits.

    with transition() as tx:
        run = tx.lock(run_id)
        step = tx.steps(run)["outline"]
        step.status = StepRun.Status.QUEUED
        tx.save_step(run, step, "status")
        tx.emit(run, "step.queued", step="outline")

Every change of a run's state happens under its row lock, in a transition. The transition holds the
one instance of each run it locked, its steps (loaded once: under the lock they are the truth, and
the engine changes them in place), the fields changed on them and the run's new events. When the
block ends it writes them in one statement — the steps' and runs' changes one UPDATE per set of
fields, the events one INSERT, as parts of one WITH — so a step that changes a run three times, or a
batch of twenty cheap steps run in one transaction, costs one round trip to write. After the commit
the events go to `workflows.events.publish`, at once: batching them across transactions (10 ms)
was tried, and one client's events came 8.6 ms later, a hundred clients' 0.7 s at p95
(bench/realtime_latency.py).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from workflows import events
from workflows.engine import snapshot, store
from workflows.models import Run, RunEvent, StepRun


@dataclass
class _Held:
    """What a transition knows of one run."""

    run: Run
    stored_seq: int  # the run's event counter as its row holds it
    events: list[RunEvent] = field(default_factory=list)  # to publish after commit
    written: int = 0  # how many of `events` are written already (a new run's, with it)
    unsaved: set[str] = field(default_factory=set)
    steps: dict[str, StepRun] | None = None
    unsaved_steps: dict[str, set[str]] = field(default_factory=dict)


class Transition:
    """The runs one transaction changes. Created by `transition()`; passed to whatever changes them."""

    def __init__(self) -> None:
        self._held: dict[str, _Held] = {}  # by run id, as text
        self._new: dict[str, list[RunEvent]] = {}  # events of runs not inserted yet
        self._flush_wait = True  # whether the COMMIT waits for PostgreSQL to flush it to disk

    def lock(self, run_id, *, wait: bool = True) -> Run:
        """The run, row-locked until the transaction ends: the instance every change of it goes through.

        Locking a run this transition holds returns the same instance. With `wait=False`, a run
        another transaction holds is reported as Run.DoesNotExist, as a missing one is.
        """
        held = self._held.get(str(run_id))
        if held is not None:
            return held.run
        run = store.run_lock(run_id, wait=wait)
        if run is None:
            raise Run.DoesNotExist(f"No run {run_id}, or another transaction holds it.")
        run.version = snapshot.version(run.version_id)
        self._held[str(run.pk)] = _Held(run=run, stored_seq=run.event_seq)
        return run

    def lock_free(self, run_ids) -> None:
        """Lock those of the runs no other transaction holds, and load their steps and those of the runs
        held already: a batch of runs costs two queries, not two per run. `lock` then finds them held."""
        wanted = [run_id for run_id in dict.fromkeys(map(str, run_ids)) if run_id not in self._held]
        for run in store.runs_lock_free(wanted):
            run.version = snapshot.version(run.version_id)
            self._held[str(run.pk)] = _Held(run=run, stored_seq=run.event_seq)
        unloaded = {key: held for key, held in self._held.items() if held.steps is None}
        for held in unloaded.values():
            held.steps = {}
        for step in store.run_steps(*unloaded) if unloaded else []:
            unloaded[str(step.run_id)].steps[step.node_key] = step

    def holds(self, run_id) -> bool:
        """Whether this transition holds the run's lock (`lock` then returns it without a query)."""
        return str(run_id) in self._held

    def commit_without_flush_wait(self) -> None:
        """Let this transaction's COMMIT return before PostgreSQL has flushed it to disk.

        Only for a transaction that runs inline steps, which are pure: if PostgreSQL crashes before
        the flush (a fraction of a second), the transaction is lost whole, the step is queued again
        and recover() re-runs it to the same result. Nothing outside acted on it durably: the next
        transaction that does (the claim of a step that calls out, a started follow-up run) commits
        synchronously, and a synchronous commit flushes every earlier commit with it. The setting
        travels with the transition's writes (`store.write`), not in a round trip of its own.
        """
        self._flush_wait = False

    def insert(self, runs: list[Run], steps: list[StepRun]) -> None:
        """Write new runs, their steps and the events emitted for them so far, in one statement."""
        by_run: dict[str, dict[str, StepRun]] = {}
        for step in steps:
            by_run.setdefault(str(step.run_id), {})[step.node_key] = step
        for run in runs:
            key = str(run.pk)
            new_events = self._new.pop(key, [])
            self._held[key] = _Held(
                run=run, stored_seq=run.event_seq, events=new_events, written=len(new_events), steps=by_run.get(key, {})
            )
        store.runs_insert(runs, steps, [event for run in runs for event in self._held[str(run.pk)].events])

    def emit(self, run: Run, type_: str, *, step: str = "", data: dict | None = None) -> None:
        """Append an event to the run's log; it is written with the transition and published after commit."""
        run.event_seq += 1
        event = RunEvent(run=run, seq=run.event_seq, type=type_, step=step, data=data or {}, created_at=timezone.now())
        held = self._held.get(str(run.pk))
        if held is None:
            # A run being created: its events wait for `insert`, which writes it.
            self._new.setdefault(str(run.pk), []).append(event)
            return
        self._check(held, run)
        held.events.append(event)

    def save(self, run: Run, *fields: str) -> None:
        """Write these fields of the run when the transition ends."""
        held = self._hold(run)
        held.unsaved.update(fields)

    def steps(self, run: Run) -> dict[str, StepRun]:
        """The run's steps by node key, loaded once: change them in place and `save_step` them."""
        held = self._hold(run)
        if held.steps is None:
            held.steps = {step.node_key: step for step in store.run_steps(run.pk)}
        return held.steps

    def step_by_id(self, run: Run, step_id) -> StepRun | None:
        return next((step for step in self.steps(run).values() if str(step.pk) == str(step_id)), None)

    def save_step(self, run: Run, step: StepRun, *fields: str) -> None:
        """Write these fields of the step when the transition ends. `step` must come from `steps(run)`."""
        if self.steps(run).get(step.node_key) is not step:
            raise RuntimeError(f"Step {step.node_key} of run {run.pk} is not the instance this transition loaded.")
        self._held[str(run.pk)].unsaved_steps.setdefault(step.node_key, set()).update(fields)

    def flush(self) -> None:
        """Write what changed and have the events published on commit.

        `transition()` calls this as the block ends. A service may call it before its audit record,
        so that the audit chain's lock, taken last, is held only until the commit.
        """
        if self._new:
            raise RuntimeError(f"Events were emitted for runs neither locked nor inserted: {sorted(self._new)}")
        held = list(self._held.values())
        changed = [(entry.steps[key], names) for entry in held for key, names in entry.unsaved_steps.items() if names]
        for entry in held:
            if entry.run.event_seq != entry.stored_seq:
                entry.unsaved.add("event_seq")
            if entry.unsaved:
                changed.append((entry.run, entry.unsaved))
        new_events = [event for entry in held for event in entry.events[entry.written :]]
        store.write(changed, [(RunEvent, new_events)], flush_wait=self._flush_wait)
        envelopes = [events.envelope(event, entry.run) for entry in held for event in entry.events]
        for entry in held:
            entry.stored_seq, entry.unsaved, entry.unsaved_steps = entry.run.event_seq, set(), {}
            entry.events, entry.written = [], 0
        if envelopes:
            transaction.on_commit(lambda: events.publish(envelopes))

    def _hold(self, run: Run) -> _Held:
        held = self._held.get(str(run.pk))
        if held is None:
            raise RuntimeError(f"Run {run.pk} was not locked in this transition.")
        self._check(held, run)
        return held

    @staticmethod
    def _check(held: _Held, run: Run) -> None:
        if held.run is not run:
            raise RuntimeError(f"Another instance of run {run.pk} is the one this transition holds.")


@contextmanager
def transition() -> Iterator[Transition]:
    """A transaction whose runs' changes are written together just before it commits."""
    with transaction.atomic():
        tx = Transition()
        yield tx
        tx.flush()
