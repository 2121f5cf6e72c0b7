"""Celery beat's scheduler: django-celery-beat's, riding out a database outage.

The stock DatabaseScheduler lets an OperationalError escape when it reads the schedule (at start, and
in its periodic full sync), and beat exits: recovery of lost work, which beat sends every
DWC_RECOVER_EVERY_SECONDS, stopped with it until someone restarted beat by hand. This one keeps the
schedule it last read while the database is away, keeps sending from it, and reads it again at every
tick (beat's loop interval, a few seconds) until the database answers. A beat started during an
outage installs its entries (settings.CELERY_BEAT_SCHEDULE) once the database is back.
"""

import logging

from django.db import DatabaseError, InterfaceError, close_old_connections, connection
from django_celery_beat.schedulers import DatabaseScheduler

logger = logging.getLogger(__name__)


class ResilientDatabaseScheduler(DatabaseScheduler):
    _setup_pending = False  # started while the database was away: entries not installed yet
    _reload_pending = False  # the last read of the schedule failed

    def setup_schedule(self) -> None:
        if not _database_answers():
            logger.warning("beat started while the database is unreachable; it will set up once it answers")
            self._setup_pending = True
            return
        super().setup_schedule()

    def all_as_schedule(self) -> dict:
        try:
            schedule = super().all_as_schedule()
        except (DatabaseError, InterfaceError) as error:
            logger.warning("beat cannot read its schedule; keeping the last one until the database answers: %s", error)
            close_old_connections()
            self._reload_pending = True
            return self._schedule or {}
        self._reload_pending = False
        return schedule

    def schedule_changed(self) -> bool:
        if self._setup_pending and _database_answers():
            self._setup_pending = False  # before setting up, which reads the schedule (and asks here)
            super().setup_schedule()
            logger.info("beat set up its schedule now that the database answers")
            return True
        return self._reload_pending or super().schedule_changed()


def _database_answers() -> bool:
    try:
        connection.ensure_connection()
    except (DatabaseError, InterfaceError):
        close_old_connections()
        return False
    return True
