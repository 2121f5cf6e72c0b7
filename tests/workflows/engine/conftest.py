"""Engine integration tests run against a real Celery worker process on the test database and Redis."""

import time

import pytest
from django.conf import settings

from tests.processes import Process, clean_env
from workflows.models import Run

TERMINAL = {"succeeded", "failed", "cancelled"}


def worker_env(**overrides: str) -> dict[str, str]:
    database = settings.DATABASES["default"]
    return clean_env(
        DJANGO_SETTINGS_MODULE="config.settings.base",
        DATABASE_URL=f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        REDIS_URL=settings.REDIS_URL,
        SECRET_KEY=settings.SECRET_KEY,
        CREDENTIALS_KEY=settings.CREDENTIALS_KEY,
        DWC_OUTBOUND_ALLOWLIST="127.0.0.1,localhost",
        LOG_LEVEL="INFO",
        **overrides,
    )


def start_worker(name: str, *, pool: str = "threads", concurrency: int = 8, env: dict | None = None) -> Process:
    args = [
        ".venv/bin/celery",
        "-A",
        "config",
        "worker",
        "--pool",
        pool,
        "--concurrency",
        str(concurrency),
        "--queues",
        "engine,generation,notifications",
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


# Package scope: other packages start workers of their own, which must not share the queues with this one.
@pytest.fixture(scope="package")
def engine_worker(django_db_setup, django_db_blocker, tmp_path_factory):
    mail_dir = tmp_path_factory.mktemp("mail")
    env = worker_env(EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend", EMAIL_FILE_PATH=str(mail_dir))
    worker = start_worker("engine-tests", env=env)
    worker.mail_dir = mail_dir
    yield worker
    worker.stop()


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
