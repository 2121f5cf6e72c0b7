import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Connects the hooks that carry X-Request-ID from the request into the tasks it enqueues.
import config.request_context  # noqa: E402,F401
