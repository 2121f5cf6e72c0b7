"""The embedded mode's in-process Celery worker and beat.

One process serves HTTP and websockets (daphne) and runs Celery beside it: a worker with the
`threads` pool and beat, both in threads, on the in-memory broker. It is the same Celery code the
distributed mode runs in separate processes, only wired together here. Celery's own `Worker` class
installs signal handlers, which only the main thread may do, so the bare `WorkController` is used
and daphne keeps the main thread and its SIGTERM/SIGINT handling.
"""

import fcntl
import json
import logging
import os
import socket
import threading

from celery.app.trace import setup_worker_optimizations
from celery.beat import EmbeddedService
from django.conf import settings
from django.core.management.base import CommandError

from config.celery import app

logger = logging.getLogger(__name__)

_state: dict[str, object] = {}


def claim_checkout(*, url: str) -> None:
    """Be the only embedded server of this var/ directory, for as long as this process lives.

    Two would each run beat (every schedule fired twice) and a worker on separate in-memory
    brokers. The lock is the kernel's, so it goes with the process however it ends (kill -9 too).
    """
    if "checkout_lock" in _state:
        return
    settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
    lock_file = open(settings.VAR_DIR / "serve.lock", "a+")  # noqa: SIM115 - held open until exit
    try:
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock_file.seek(0)
        try:
            holder = json.loads(lock_file.read())
        except ValueError:
            holder = {}
        lock_file.close()
        raise CommandError(
            f"Document Workflow Chain is already running from {settings.VAR_DIR} "
            f"(pid {holder.get('pid', '?')}, {holder.get('url', 'unknown address')}). Stop that one first "
            "(Ctrl-C in its terminal), or give this one a var/ of its own with DWC_VAR_DIR."
        ) from None
    lock_file.seek(0)
    lock_file.truncate()
    lock_file.write(json.dumps({"pid": os.getpid(), "url": url}))
    lock_file.flush()
    _state["checkout_lock"] = lock_file


def start() -> None:
    hostname = f"embedded@{socket.gethostname()}"
    # What celery.apps.worker.Worker does before starting: without it tasks see the bare host name.
    setup_worker_optimizations(app, hostname)
    worker = app.WorkController(
        hostname=hostname,
        pool_cls="threads",
        concurrency=settings.DWC_EMBEDDED_WORKER_CONCURRENCY,
        queues=[queue.name for queue in settings.CELERY_TASK_QUEUES],
        loglevel=settings.LOG_LEVEL,
        without_mingle=True,
        without_gossip=True,
    )
    thread = threading.Thread(target=worker.start, name="celery-worker", daemon=True)
    thread.start()
    beat = EmbeddedService(app, thread=True, scheduler_cls=settings.CELERY_BEAT_SCHEDULER)
    beat.start()
    _state.update(worker=worker, worker_thread=thread, beat=beat)
    logger.info("embedded worker and beat started", extra={"concurrency": worker.concurrency})


def stop(timeout: float = 8.0) -> None:
    """Stop beat, then let the worker finish what it is running (bounded by `timeout`)."""
    beat = _state.pop("beat", None)
    worker = _state.pop("worker", None)
    thread = _state.pop("worker_thread", None)
    if beat is not None:
        beat.stop()
    if worker is not None:
        worker.stop(in_sighandler=False)
    if thread is not None:
        thread.join(timeout)
    logger.info("embedded worker and beat stopped")


def worker_is_running() -> bool:
    thread = _state.get("worker_thread")
    return isinstance(thread, threading.Thread) and thread.is_alive()
