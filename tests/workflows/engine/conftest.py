"""Engine integration tests run against a real Celery worker process on the test database and Redis."""

import time

import pytest

from tests.workflows.workers import start_worker, wait_for_run, worker_env

__all__ = ["wait_for_run"]

# The engine_worker of this package while it runs: runs are left to it only then.
running_workers = []


# Package scope: other packages start workers of their own, which must not share the queues with this one.
@pytest.fixture(scope="package")
def engine_worker(django_db_setup, django_db_blocker, tmp_path_factory):
    mail_dir = tmp_path_factory.mktemp("mail")
    env = worker_env(EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend", EMAIL_FILE_PATH=str(mail_dir))
    worker = start_worker("engine-tests", env=env)
    worker.mail_dir = mail_dir
    running_workers.append(worker)
    yield worker
    running_workers.remove(worker)
    worker.stop()


@pytest.fixture(autouse=True)
def settle_runs(request):
    """After a test whose runs a worker executes, let them finish before the database is wiped.

    The wipe (TRUNCATE) and a worker's transaction on the same rows would deadlock. Runs still
    waiting (a long delay, an approval) are closed, so a late message for them does nothing.
    """
    yield
    marker = request.node.get_closest_marker("django_db")
    if not (marker and marker.kwargs.get("transaction")):
        return
    from workflows.models import Run, StepRun

    deadline = time.monotonic() + (15 if running_workers else 0)  # without a worker nothing would finish
    busy = [Run.Status.PENDING, Run.Status.QUEUED, Run.Status.RUNNING]
    while time.monotonic() < deadline:
        if not Run.objects.filter(status__in=busy).exists() and not StepRun.objects.filter(status="running").exists():
            break
        time.sleep(0.05)
    Run.objects.exclude(status__in=Run.FINISHED).update(status=Run.Status.CANCELLED)
    time.sleep(0.1)  # a claim that saw the run open just before the update finishes its transaction
