"""A server process that is stopping lets the requests it is serving that may wait (webhook
deliveries, with their `?wait=`) answer first.

`manage.py serve` calls `begin()` when it is told to stop (SIGTERM, Ctrl-C), then gives those
requests up to a few seconds (until `drained()`) before the server stops: it wakes the waiting
deliveries (workflows.run_ends), which see `began()` and answer with the run as it stands, instead
of holding the process for their whole wait or being cut off without an answer.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_began = threading.Event()
_lock = threading.Lock()
_waiting = 0


def begin() -> None:
    _began.set()


def began() -> bool:
    return _began.is_set()


@contextmanager
def waiting() -> Iterator[None]:
    """Count the enclosed wait as one that the stopping process should let answer."""
    global _waiting
    with _lock:
        _waiting += 1
    try:
        yield
    finally:
        with _lock:
            _waiting -= 1


def drained() -> bool:
    """Whether no request is waiting any more."""
    return _waiting == 0
