"""Sending in bursts: many small sends within a few milliseconds leave as one.

Starting a run whose first step is cheap sends a message that costs a round trip and more CPU than
the step it announces (workflows.engine.dispatch). Under load an `IntervalBatcher` gathers what is
sent within an interval and hands it on together; when the process is quiet, what is sent leaves
at once.
"""

import atexit
import logging
import math
import os
import threading
import time
from collections.abc import Callable

from django.db import close_old_connections

logger = logging.getLogger(__name__)


class IntervalBatcher:
    """Hands the items added to `send` in batches, at most one batch per `interval` seconds.

    The first items after a quiet interval are sent at once, by the caller; those added within the
    interval leave together at its end, from a sender thread. Batches are sent one at a time, in the
    order of their items. What is pending at exit is sent then; a forked child starts afresh.
    """

    def __init__(self, send: Callable[[list], None], *, interval: float, name: str):
        self._send, self._interval, self._name = send, interval, name
        self._reset()
        os.register_at_fork(after_in_child=self._reset)
        atexit.register(self.flush)

    def _reset(self) -> None:
        self._wakeup = threading.Condition()
        self._pending: list = []
        self._last_sent = -math.inf
        self._sender: threading.Thread | None = None
        self._sending = threading.Lock()  # held while a batch is sent, by the caller or the thread

    def add(self, items: list) -> None:
        with self._wakeup:
            now = time.monotonic()
            if self._pending or self._sending.locked() or now < self._last_sent + self._interval:
                if not self._pending:
                    self._start_sender()
                    self._wakeup.notify()
                self._pending += items
                return
            self._last_sent = now
            self._sending.acquire()
        self._send_and_release(items)

    def _start_sender(self) -> None:
        if self._sender is None:
            # A daemon, so that it never holds up exit; what it has not sent by then, flush() sends.
            self._sender = threading.Thread(target=self._send_when_due, name=self._name, daemon=True)
            self._sender.start()

    def _send_when_due(self) -> None:
        while True:
            with self._wakeup:
                while not self._pending:
                    self._wakeup.wait()
                due = self._last_sent + self._interval
                while time.monotonic() < due:
                    self._wakeup.wait(due - time.monotonic())
                batch, self._pending = self._pending, []
                self._last_sent = time.monotonic()
                self._sending.acquire()
            try:
                self._send_and_release(batch)
            except Exception:
                # The thread must outlive a batch that failed (the broker or the database away), or
                # nothing added later would leave. What the batch carried is recovered elsewhere: a
                # step message by recover(), a run event by the clients reading the run's events.
                logger.exception("%s: a batch could not be sent", self._name)
            finally:
                # A connection this thread opened (a send may query) is closed once broken or past
                # CONN_MAX_AGE, as Django does between requests and Celery between tasks.
                close_old_connections()

    def flush(self) -> None:
        """Send what waits now, after a batch being sent has left."""
        with self._wakeup:  # the locks are taken in this order everywhere
            batch, self._pending = self._pending, []
            self._sending.acquire()
        self._send_and_release(batch)

    def _send_and_release(self, batch: list) -> None:
        """Send a batch for which the caller took `_sending` (while holding `_wakeup`, as everywhere)."""
        try:
            if batch:
                self._send(batch)
        finally:
            self._sending.release()
