"""The PostgreSQL backend of config.database, starting the embedded server before the process's first connection."""

from pathlib import Path

from config.database import base
from config.embedded_db.server import ensure_running


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params):
        # Once per process; afterwards a dict lookup. A server that stops later fails the
        # connection as any PostgreSQL server would (OperationalError), it is not restarted here.
        ensure_running(Path(self.settings_dict["VAR_DIR"]))
        return super().get_new_connection(conn_params)
