"""Real Celery worker processes on the test database, and waiting for runs they execute."""

import time

from django.conf import settings

from tests.processes import Process, clean_env, database_url_for_subprocesses
from workflows.models import Run

TERMINAL = {"succeeded", "failed", "cancelled"}


def worker_env(**overrides: str) -> dict[str, str]:
    defaults = {
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "DATABASE_URL": database_url_for_subprocesses(),
        "REDIS_URL": settings.REDIS_URL,
        "SECRET_KEY": settings.SECRET_KEY,
        "CREDENTIALS_KEY": settings.CREDENTIALS_KEY,
        "DWC_OUTBOUND_ALLOWLIST": "127.0.0.1,localhost",
        "LOG_LEVEL": "INFO",
    }
    return clean_env(**{**defaults, **overrides})


ALL_QUEUES = ",".join([settings.DWC_CONTROL_QUEUE, *settings.DWC_STEP_QUEUES])


def start_worker(
    name: str,
    *,
    pool: str = "threads",
    concurrency: int = 8,
    env: dict | None = None,
    program: list[str] | None = None,
    queues: str = ALL_QUEUES,
) -> Process:
    """A worker on `queues` (every queue by default); `program` replaces `celery -A config` (e.g. a
    patched entry point)."""
    args = [
        *(program or [".venv/bin/celery", "-A", "config"]),
        "worker",
        "--pool",
        pool,
        "--concurrency",
        str(concurrency),
        "--queues",
        queues,
        "--without-mingle",
        "--without-gossip",
        "--hostname",
        f"{name}@%h",
        "--loglevel",
        "INFO",
    ]
    worker = Process(args, env or worker_env(), name)
    deadline = time.monotonic() + 60
    while "ready." not in worker.output():
        if worker.popen.poll() is not None or time.monotonic() > deadline:
            worker.stop()
            raise AssertionError(f"worker {name} did not start:\n{worker.output()}")
        time.sleep(0.1)
    return worker


def wait_for_run(run_id, timeout: float = 30, statuses=TERMINAL) -> Run:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = Run.objects.get(pk=run_id)
        if run.status in statuses:
            return run
        time.sleep(0.05)
    run = Run.objects.get(pk=run_id)
    steps = {step.node_key: (step.status, step.attempt, step.error) for step in run.steps.all()}
    raise AssertionError(f"run {run_id} is still {run.status} after {timeout}s; steps: {steps}")
