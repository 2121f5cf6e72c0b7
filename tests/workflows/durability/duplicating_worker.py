"""A Celery worker whose every step message is sent twice: the broker's at-least-once, made visible.

python -m tests.workflows.durability.duplicating_worker worker [celery worker options]
"""

import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

import django

django.setup()

from config.celery import app  # noqa: E402
from workflows.engine import dispatch  # noqa: E402

_send = dispatch.send


def send_twice(dispatches: list) -> None:
    _send(dispatches)
    _send(dispatches)


dispatch.send = send_twice

if __name__ == "__main__":
    app.worker_main(sys.argv[1:])
