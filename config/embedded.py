"""The embedded mode's in-process Celery worker and beat.

One process serves HTTP and websockets (daphne) and runs Celery beside it: two workers with the
`threads` pool, one for the engine's control work and one for the steps that wait on the outside
world (as `make engine-worker` and `make worker` are in the distributed mode), and beat, all in
threads, on the in-memory broker. It is the same Celery code the
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

from celery import Celery
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


# Control work takes moments; two threads keep one slow advance from holding up the next.
CONTROL_CONCURRENCY = 2


def start() -> None:
    host = socket.gethostname()
    # A worker's choice of queues is kept on its Celery app, so the step worker has an app of its own
    # (configured as `config.celery.app`, on the same in-memory broker).
    steps_app = Celery("config-steps", set_as_current=False)
    steps_app.config_from_object("django.conf:settings", namespace="CELERY")
    steps_app.autodiscover_tasks()
    # What celery.apps.worker.Worker does before starting: without it tasks see the bare host name.
    # The name tasks see is process-wide, so both workers' tasks see "embedded@host"; the app named
    # last becomes the default one.
    for worker_app in (steps_app, app):
        setup_worker_optimizations(worker_app, f"embedded@{host}")
    workers = [
        _worker(app, f"embedded@{host}", [settings.DWC_CONTROL_QUEUE], CONTROL_CONCURRENCY),
        _worker(
            steps_app,
            f"embedded-steps@{host}",
            list(settings.DWC_STEP_QUEUES),
            settings.DWC_EMBEDDED_WORKER_CONCURRENCY,
        ),
    ]
    threads = [threading.Thread(target=w.start, name=f"celery-{w.hostname}", daemon=True) for w in workers]
    for thread in threads:
        thread.start()
    beat = EmbeddedService(app, thread=True, scheduler_cls=settings.CELERY_BEAT_SCHEDULER)
    beat.start()
    _state.update(workers=workers, worker_threads=threads, beat=beat)
    logger.info("embedded workers and beat started", extra={"concurrency": [w.concurrency for w in workers]})


def _worker(worker_app: Celery, hostname: str, queues: list[str], concurrency: int):
    return worker_app.WorkController(
        hostname=hostname,
        pool_cls="threads",
        concurrency=concurrency,
        queues=queues,
        loglevel=settings.LOG_LEVEL,
        without_mingle=True,
        without_gossip=True,
    )


def stop(timeout: float = 8.0) -> None:
    """Stop beat, then let the workers finish what they are running (bounded by `timeout`)."""
    beat = _state.pop("beat", None)
    if beat is not None:
        beat.stop()
    for worker in _state.pop("workers", []):
        worker.stop(in_sighandler=False)
    for thread in _state.pop("worker_threads", []):
        thread.join(timeout)
    logger.info("embedded workers and beat stopped")


def worker_is_running() -> bool:
    threads = _state.get("worker_threads") or []
    return bool(threads) and all(thread.is_alive() for thread in threads)
