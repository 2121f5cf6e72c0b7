"""What a running step shows while it runs: its heartbeat, and the text it streams.

Both run beside a slow node (an HTTP call, a generation), outside the claim's transaction.
"""

import logging
import threading
import time
from datetime import timedelta

from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone

from workflows.engine import cancellation, store
from workflows.engine.errors import PermanentError
from workflows.engine.transition import transition
from workflows.models import StepRun

logger = logging.getLogger(__name__)

STOPPED_WHILE_GENERATING = "The step was stopped (cancelled or timed out) while it generated."
# Streamed text is published at most this often per step: often enough to look live, rarely
# enough that a fast model does not turn into a transaction per token.
DELTA_INTERVAL_SECONDS = 0.05


def timing(name: str) -> timedelta:
    """One of the engine's DWC_*_SECONDS settings (settings, so that tests and operators can tune them)."""
    return timedelta(seconds=float(getattr(django_settings, name)))


class Heartbeat:
    """Touches the step's heartbeat while it runs, so recover() can tell a slow step from a dead worker.

    A beat that finds the step no longer running as this attempt (cancelled, timed out, or taken
    over after a lost lease) stops the step's outbound calls (see `cancellation`) and beats no more.
    """

    def __init__(self, step_id, attempt: int):
        self.step_id, self.attempt = step_id, attempt
        self.stopped = threading.Event()
        self.cancel_scope = cancellation.CancelScope()
        self.thread = threading.Thread(target=self._beat, name=f"heartbeat-{step_id}", daemon=True)

    def _beat(self) -> None:
        try:
            while not self.stopped.wait(timing("DWC_HEARTBEAT_SECONDS").total_seconds()):
                try:
                    still_mine = store.heartbeat_touch(self.step_id, self.attempt, timezone.now())
                except store.DATABASE_UNREACHABLE:
                    # Unreachable for now: the step goes on, and so does the beat once it is back.
                    logger.warning("a heartbeat could not reach the database", extra={"step": str(self.step_id)})
                    connection.close()
                    continue
                if not still_mine and not self.stopped.is_set():
                    logger.info("stopping a step that is no longer running here", extra={"step": str(self.step_id)})
                    self.cancel_scope.cancel()
                    return
        finally:
            connection.close()  # this thread's own connection

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.stopped.set()


class DeltaStream:
    """Publishes text a node streams as `step.delta` events, at most one every DELTA_INTERVAL_SECONDS.

    Each flush is a short transaction of its own under the run's lock, so the events keep their
    place in the run's sequence. A step that is no longer running this attempt (cancelled, timed
    out) stops the generation: the flush raises. After a restart (the provider retried), an event
    with `restart: true` tells watchers to drop the text they have.
    """

    def __init__(self, run_id, step: StepRun):
        self.run_id, self.step_id, self.node_key, self.attempt = run_id, step.pk, step.node_key, step.attempt
        self.pending: list[str] = []
        self.flushed_at = 0.0

    def write(self, text: str) -> None:
        self.pending.append(text)
        if time.monotonic() - self.flushed_at >= DELTA_INTERVAL_SECONDS:
            self.flush()

    def restart(self) -> None:
        self.pending = []
        self._publish({"attempt": self.attempt, "text": "", "restart": True})

    def flush(self) -> None:
        if self.pending:
            text = "".join(self.pending)
            try:
                self._publish({"attempt": self.attempt, "text": text})
            except store.DATABASE_UNREACHABLE:
                # The database is unreachable for now: the text waits for the next flush, the
                # generation goes on (its result is recorded once the database is back).
                logger.warning("streamed text could not be published yet", extra={"step": str(self.step_id)})
                connection.close()
                self.pending = [text]
                self.flushed_at = time.monotonic() + 1  # and is tried again in a second, not at every token
                return
            self.pending = []

    def _publish(self, data: dict) -> None:
        self.flushed_at = time.monotonic()
        with transition() as tx:
            run = tx.lock(self.run_id)
            if store.step_claim_state(self.step_id) != (StepRun.Status.RUNNING, self.attempt):
                raise PermanentError(STOPPED_WHILE_GENERATING)
            tx.emit(run, "step.delta", step=self.node_key, data=data)
