"""Tests: PostgreSQL from DATABASE_URL, else the embedded server of var/ (as `make run` uses), and
a real Redis on localhost (REDIS_URL overrides it)."""

import os
from urllib.parse import urlsplit, urlunsplit

os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/9")


def _redis_url_of_this_test_process(url: str) -> str:
    """Each pytest-xdist process (gw0, gw1, ...) its own Redis database, the next ones after the
    configured one, as it has its own test database: brokers, caches and throttles never mix."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return url
    parts = urlsplit(url)
    db = int(parts.path.strip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{(db + int(worker[2:])) % 16}"))


os.environ["REDIS_URL"] = _redis_url_of_this_test_process(os.environ["REDIS_URL"])

from config.settings.base import *  # noqa: E402,F403 - after REDIS_URL is this process's

ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
LOG_LEVEL = "WARNING"
LOGGING["root"]["level"] = "WARNING"  # noqa: F405

# The suite logs in, registers and starts runs far faster than any person: the throttles and the
# login lockout get limits it never reaches. Their own tests set low ones (override_settings).
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {  # noqa: F405
    **{scope: "100000/min" for scope in ("auth", "user", "session", "trigger")},
}
DWC_LOGIN_MAX_FAILURES = 1000

# The test process imports config.asgi to run its application in-process (the consumer tests). A
# pool there would outlive the tests with connections that other threads still hold, and keep
# pytest-django from dropping the test database. The servers the tests start run the base
# settings, pool included (tests/test_modes.py checks it).
DWC_ASGI_DATABASE_POOL = False

# Cheap Argon2 (tests/hashers.py): each user the suite makes and each login it does would cost a
# tenth of a second and more. Production's parameters are checked in tests/test_settings.py.
# Production's Argon2 hasher leaves the list: two hashers of one algorithm would make the later one
# verify, and ask to rehash every cheap hash at production cost.
PASSWORD_HASHERS = [
    "tests.hashers.CheapArgon2PasswordHasher",
    *(hasher for hasher in PASSWORD_HASHERS if not hasher.endswith(".Argon2PasswordHasher")),  # noqa: F405
]
