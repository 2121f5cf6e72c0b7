import socket
from urllib.parse import urlsplit

import pytest
import redis
from django.conf import settings
from django.db import DatabaseError, connection
from pytest_httpserver import HTTPServer
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import RefreshToken

from config.startup import database_problem
from tests.api_world import build_world
from tests.factories import UserFactory
from tests.processes import Process

# Every response of the suite is searched for secrets and password hashes (see tests/canary.py).
pytest_plugins = ["tests.canary"]

REDIS_HINT = 'start it with: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no'


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def pytest_sessionstart(session: pytest.Session) -> None:
    """The suite runs against real PostgreSQL and Redis; without them it stops at once, saying why."""
    problem = database_problem(settings.DATABASES["default"])
    if problem:
        pytest.exit(problem, returncode=3)
    redis_url = urlsplit(settings.REDIS_URL)
    if not _reachable(redis_url.hostname or "127.0.0.1", redis_url.port or 6379):
        pytest.exit(f"Redis is not reachable at {redis_url.hostname}:{redis_url.port}; {REDIS_HINT}", returncode=3)
    # Leftover messages and cache entries of an earlier run must not leak into this one.
    redis.Redis.from_url(settings.REDIS_URL).flushdb()


@pytest.fixture(autouse=True)
def no_process_outlives_its_test():
    """A worker or server a test started and left running (its assertion failed before it stopped
    it) is stopped after the test: left alone, a worker would take later tests' messages."""
    before = Process.running()
    yield
    for process in Process.running() - before:
        process.stop()


# Whether this test's connection holds the analytics rollup writer's lock (taken before a wipe).
_writer_lock = {"held": False}


@pytest.fixture(autouse=True)
def rollup_writer_kept_out_of_the_wipe(request, django_db_blocker):
    """A test whose database is wiped (TRUNCATE) after it takes the analytics rollup writer's lock
    first: a worker adding its runs to the rollups would otherwise hold some of the wiped tables and
    want others, and the wipe would deadlock with it. The lock is held through the wipe (the next
    test lets it go), so a writer that comes late waits, then finds the wiped tables empty."""
    from analytics.services.recording import ROLLUP_WRITER_LOCK

    if _writer_lock["held"]:
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock_all()")
        _writer_lock["held"] = False
    yield
    marker = request.node.get_closest_marker("django_db")
    if (marker and marker.kwargs.get("transaction")) or "transactional_db" in request.fixturenames:
        try:
            with django_db_blocker.unblock(), connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_lock(%s, %s)", ROLLUP_WRITER_LOCK)
            _writer_lock["held"] = True
        except DatabaseError:  # a test that stopped the database: no writer gets in either
            connection.close()


@pytest.fixture
def threaded_server():
    """A local HTTP server that answers concurrent requests in parallel (pytest-httpserver's shared
    `httpserver` serves one at a time): for answers that wait or stream."""
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture
def user(db):
    return UserFactory()


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


@pytest.fixture
def user_api(user) -> APIClient:
    return client_for(user)


@pytest.fixture
def world(db) -> dict:
    """Workspace A with one object of every kind, its owner and viewer, and an outsider (tests/api_world.py)."""
    return build_world()
