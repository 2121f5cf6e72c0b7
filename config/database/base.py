"""Django's PostgreSQL backend, whose per-request health check skips the `SELECT 1` for a connection
that ended a request without error moments ago and that the server has sent nothing since.

Django's CONN_HEALTH_CHECKS pings a persistent connection at the first query of each request (and
each Celery task): a round trip more on every API read, which made two round trips three. Like
HikariCP's `aliveBypassWindowMs`, a connection proven within HEALTH_CHECK_GRACE_SECONDS (the
DATABASES setting, DATABASE_HEALTH_CHECK_GRACE_SECONDS in the environment, 0 turns it off) is taken
as alive, after checks that cost no round trip: psycopg has not seen it break, it is idle outside a
transaction, and its socket has nothing to read. A server that shuts down, restarts or ends the
session sends a FATAL message or closes the socket, which makes it readable, and the connection is
then pinged as before. Beyond the window, or whenever errors occurred, Django's own check runs.
"""

import select
import time

from django.db.backends.postgresql import base
from psycopg import pq


class DatabaseWrapper(base.DatabaseWrapper):
    _proven_at: float | None = None  # when the connection last ended a request or task without error

    def close_if_unusable_or_obsolete(self) -> None:
        # Called as a request (or task) starts and ends. health_check_done says the connection was
        # used since the last call: if nothing failed, it has just proven itself.
        if self.connection is not None and self.health_check_done and not self.errors_occurred:
            self._proven_at = time.monotonic()
        super().close_if_unusable_or_obsolete()

    def close_if_health_check_failed(self) -> None:
        if self.connection is not None and not self.health_check_done and self._alive_without_asking():
            self.health_check_done = True
            return
        super().close_if_health_check_failed()

    def connect(self) -> None:
        self._proven_at = None
        super().connect()

    def _alive_without_asking(self) -> bool:
        grace = self.settings_dict.get("HEALTH_CHECK_GRACE_SECONDS", 0)
        if not grace or self._proven_at is None or time.monotonic() - self._proven_at > grace:
            return False
        if not self.health_check_enabled or self.pool:
            return False
        connection = self.connection
        if connection.closed or connection.broken or connection.pgconn.transaction_status != pq.TransactionStatus.IDLE:
            return False
        try:
            readable, _, _ = select.select([connection.fileno()], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable
