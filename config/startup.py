"""Checks a process makes before it starts work: is the database there?

A DATABASE_URL whose server does not answer, or an embedded server that cannot start, is reported
in one line that says what to do, instead of a traceback from the first query.
"""

import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import pq
from psycopg.conninfo import make_conninfo

from config.embedded_db.server import EmbeddedDatabaseError, ensure_running

CONNECT_TIMEOUT_SECONDS = 3


def masked_url(url: str) -> str:
    """The URL with its password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def database_problem(database: dict, url: str = "") -> str | None:
    """Why the configured database cannot be used, in one line; None when it can."""
    if database["ENGINE"] == "config.embedded_db":
        try:
            ensure_running(Path(database["VAR_DIR"]))
        except EmbeddedDatabaseError as error:
            return f"The embedded PostgreSQL server cannot start: {error}"
        return None
    parameters = {
        "dbname": database["NAME"],
        "user": database["USER"],
        "password": database["PASSWORD"],
        "host": database["HOST"],
        "port": database["PORT"],
        "connect_timeout": CONNECT_TIMEOUT_SECONDS,
    }
    # A socket directory may come as ?host=/path; TLS settings as ?sslmode=...
    parameters.update({key: value for key, value in database.get("OPTIONS", {}).items() if key in {"host", "sslmode"}})
    try:
        psycopg.connect(**parameters).close()
    except psycopg.OperationalError as error:
        # A server that answered with an error (a database not created yet, a wrong password) is for
        # Django to report. psycopg gives connection errors no SQLSTATE to tell that from a server
        # that never answered, so ask libpq's ping (what pg_isready uses), which does.
        if pq.PGconn.ping(make_conninfo(**parameters).encode()) in {pq.Ping.NO_RESPONSE, pq.Ping.NO_ATTEMPT}:
            reason = " ".join(str(error).split())
            where = masked_url(url) if url else f"{database['HOST']}:{database['PORT']}"
            return f"The database at {where} does not answer ({reason}); start it, or fix DATABASE_URL."
    return None


def exit_unless_database_answers() -> None:
    from django.conf import settings

    problem = database_problem(settings.DATABASES["default"], settings.DATABASE_URL)
    if problem:
        sys.stderr.write(f"error: {problem}\n")
        sys.exit(1)
