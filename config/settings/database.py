"""The database: PostgreSQL in every mode, the server of DATABASE_URL or the embedded one of var/."""

import os

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.embedded_db import database_settings as embedded_database_settings
from config.settings.environment import VAR_DIR

# One database engine everywhere: PostgreSQL. DATABASE_URL names a server of your own; without it
# the embedded server of var/ is used (config/embedded_db), started by the first process that connects.
DATABASE_URL = os.environ.get("DATABASE_URL", "")
DWC_DATABASE_SERVER = "external" if DATABASE_URL else "embedded"
_database_lifetime = {
    "CONN_MAX_AGE": int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
    "CONN_HEALTH_CHECKS": True,
    # A connection that ended a request without error this recently is checked without a round
    # trip (config.database.base); 0 pings it at every request, as Django does.
    "HEALTH_CHECK_GRACE_SECONDS": float(os.environ.get("DATABASE_HEALTH_CHECK_GRACE_SECONDS", "5")),
}
if DATABASE_URL:
    if not DATABASE_URL.startswith(("postgres://", "postgresql://", "pgsql://")):
        raise ImproperlyConfigured(
            f"DATABASE_URL must be a PostgreSQL URL (postgres://...), not {DATABASE_URL.split(':')[0]}:"
        )
    DATABASES = {"default": {**dj_database_url.parse(DATABASE_URL, engine="config.database"), **_database_lifetime}}
else:
    DATABASES = {"default": {**embedded_database_settings(VAR_DIR), **_database_lifetime}}
if os.environ.get("DATABASE_PREPARED_STATEMENTS", "on") != "off":
    # Parameters bound by the server, and a statement run 5 times on a connection kept prepared
    # there: the engine's hot statements skip parsing and planning, which halved PostgreSQL's CPU
    # per step (bench/engine_overhead.py). "off" for a pooler that cannot keep prepared statements
    # (PgBouncer before 1.21 in transaction mode).
    DATABASES["default"].setdefault("OPTIONS", {}).update(server_side_binding=True, prepare_threshold=5)
# config.asgi gives an ASGI server's process a pool of PostgreSQL connections (see there).
DWC_ASGI_DATABASE_POOL = True
