"""Engine integration tests run against a real Celery worker process on the test database and Redis."""

import pytest

from tests.workflows.workers import start_worker, wait_for_run, worker_env

__all__ = ["wait_for_run"]


# Package scope: other packages start workers of their own, which must not share the queues with this one.
@pytest.fixture(scope="package")
def engine_worker(django_db_setup, django_db_blocker, tmp_path_factory):
    mail_dir = tmp_path_factory.mktemp("mail")
    env = worker_env(EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend", EMAIL_FILE_PATH=str(mail_dir))
    worker = start_worker("engine-tests", env=env)
    worker.mail_dir = mail_dir
    yield worker
    worker.stop()
