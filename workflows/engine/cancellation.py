"""Stopping a running step's outbound calls once the step is no longer its worker's to run.

A step that is cancelled (its run cancelled or timed out) or whose claim was lost (recover() gave it
to another worker) keeps its worker busy until its HTTP or language-model call returns, which may be
minutes. Its heartbeat notices (the beat's conditional update matches no row) and cancels the step's
`CancelScope`: every socket the step's egress calls (and its email node's SMTP connection) opened is
shut down, which wakes a thread blocked reading from it, and no new call starts. The step's late
result is then dropped as usual.

Sockets are learned from httpcore's documented `trace` request extension, which reports each
connection's network stream as it is opened; a TLS connection is reported twice (TCP, then TLS).
"""

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from typing import Any

from workflows.engine.errors import PermanentError

STEP_STOPPED = "the step was stopped while calling out: its run was cancelled or another worker took it over"
_OPENED = ("connection.connect_tcp.complete", "connection.start_tls.complete")


class StepStopped(PermanentError):
    """The step's outbound call was cut off because the step is no longer this worker's to run."""


class CancelScope:
    """The sockets one running step has open, and whether the step has been stopped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.cancelled = False

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore's trace callback (the request's `trace` extension), called in the step's thread."""
        if event not in _OPENED or info.get("return_value") is None:
            return
        sock = info["return_value"].get_extra_info("socket")
        if sock is not None:
            self.add_socket(sock)

    def add_socket(self, sock: socket.socket) -> None:
        """Have `cancel()` shut `sock` down: a connection opened outside egress (the email node's SMTP).

        Shut at once if the step was already stopped, so a connection that raced the cancel is cut too.
        """
        with self._lock:
            self._sockets = [known for known in self._sockets if known.fileno() != -1]
            self._sockets.append(sock)
            cancelled = self.cancelled
        if cancelled:
            _shut(sock)

    def cancel(self) -> None:
        """Called from the heartbeat thread: cut every open connection; later calls raise StepStopped."""
        with self._lock:
            self.cancelled = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)

    def check(self) -> None:
        if self.cancelled:
            raise StepStopped(STEP_STOPPED)


def _shut(sock: socket.socket) -> None:
    # shutdown(), unlike close(), wakes a thread blocked in recv() on the socket. The plain socket
    # method on purpose: SSLSocket.shutdown would also drop its SSL object under the reading thread.
    with suppress(OSError):  # already closed, or detached when TLS wrapped it
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


_current: ContextVar[CancelScope | None] = ContextVar("dwc_cancel_scope", default=None)


def current() -> CancelScope | None:
    """The scope of the step this thread is running, if any."""
    return _current.get()


@contextmanager
def scope(cancel_scope: CancelScope) -> Iterator[CancelScope]:
    """Make `cancel_scope` the current one for the calls made inside the block."""
    token = _current.set(cancel_scope)
    try:
        yield cancel_scope
    finally:
        _current.reset(token)
