import os
from logging.config import dictConfig

from celery import Celery
from celery.signals import beat_init, setup_logging, task_postrun, task_prerun, worker_init, worker_process_shutdown

from config import metrics_server

# Before Django (and prometheus_client) load: a worker's pool processes count in shared files.
metrics_server.prepare()
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@setup_logging.connect
def use_django_logging(**_kwargs) -> None:
    # With a receiver here Celery leaves logging alone: workers log the same JSON lines as the server.
    from django.conf import settings

    dictConfig(settings.LOGGING)


@worker_init.connect
@beat_init.connect
def serve_metrics(**_kwargs) -> None:
    metrics_server.serve()


@worker_process_shutdown.connect
def pool_process_exited(pid: int | None = None, **_kwargs) -> None:
    metrics_server.process_exited(pid or os.getpid())


@task_prerun.connect
@task_postrun.connect
def close_old_database_connections(**_kwargs) -> None:
    # What Django does around each request: drop a connection past CONN_MAX_AGE or left unusable
    # by an error, keep a healthy one (CELERY_DB_REUSE_MAX keeps Celery from closing every one).
    from django.db import close_old_connections

    close_old_connections()


# Connects the hooks that carry X-Request-ID from the request into the tasks it enqueues.
import core.request_context  # noqa: E402,F401
