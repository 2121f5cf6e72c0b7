import os
from logging.config import dictConfig

from celery import Celery
from celery.signals import setup_logging, task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@setup_logging.connect
def use_django_logging(**_kwargs) -> None:
    # With a receiver here Celery leaves logging alone: workers log the same JSON lines as the server.
    from django.conf import settings

    dictConfig(settings.LOGGING)


@task_prerun.connect
@task_postrun.connect
def close_old_database_connections(**_kwargs) -> None:
    # What Django does around each request: drop a connection past CONN_MAX_AGE or left unusable
    # by an error, keep a healthy one (CELERY_DB_REUSE_MAX keeps Celery from closing every one).
    from django.db import close_old_connections

    close_old_connections()


# Connects the hooks that carry X-Request-ID from the request into the tasks it enqueues.
import core.request_context  # noqa: E402,F401
