"""The database backend's health check (config.database): no round trip for a connection that just
ended a request without error, Django's `SELECT 1` otherwise, and a connection the server ended is
replaced before a request uses it."""

import time

import psycopg
import pytest
from django.db import OperationalError, close_old_connections, connection, connections

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def persistent_connection():
    """A persistent connection, as gunicorn's and the workers' (importing config.asgi, as other
    tests do, sets CONN_MAX_AGE to 0 for the process)."""
    configured = connection.settings_dict["CONN_MAX_AGE"]
    connection.settings_dict["CONN_MAX_AGE"] = 60
    connection.close()
    yield
    connection.settings_dict["CONN_MAX_AGE"] = configured
    connection.close()


@pytest.fixture
def pings(monkeypatch):
    """How many times Django's own health check (`SELECT 1`) ran."""
    count = {"pings": 0}
    backend = type(connections["default"])
    original = backend.is_usable

    def counted(self):
        count["pings"] += 1
        return original(self)

    monkeypatch.setattr(backend, "is_usable", counted)
    return count


def a_request() -> int:
    """What Django does around a request or a Celery task: close_old_connections before and after,
    one query in between. Returns the server process that answered the query."""
    close_old_connections()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    close_old_connections()
    return pid


def end_session(pid: int) -> None:
    """What a server restart or an administrator does to a session, from another connection."""
    with psycopg.connect(**connection.get_connection_params(), autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
        # pg_terminate_backend only signals: the session has ended (its goodbye sent) once it is gone.
        deadline = time.monotonic() + 10
        while other.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone():
            assert time.monotonic() < deadline, f"session {pid} did not end"
            time.sleep(0.01)


def test_a_connection_that_just_ended_a_request_is_not_pinged(pings):
    first = a_request()
    pings["pings"] = 0
    assert [a_request() for _ in range(3)] == [first] * 3
    assert pings["pings"] == 0


@pytest.fixture
def grace():
    """Sets the connection's grace for the test, and puts the configured one back."""
    configured = connection.settings_dict["HEALTH_CHECK_GRACE_SECONDS"]
    yield lambda seconds: connection.settings_dict.__setitem__("HEALTH_CHECK_GRACE_SECONDS", seconds)
    connection.settings_dict["HEALTH_CHECK_GRACE_SECONDS"] = configured


def test_a_connection_idle_beyond_the_grace_is_pinged(pings, grace):
    grace(0.05)
    first = a_request()
    pings["pings"] = 0
    time.sleep(0.1)
    assert a_request() == first
    assert pings["pings"] == 1


def test_a_grace_of_zero_pings_at_every_request(pings, grace):
    grace(0)
    a_request()
    pings["pings"] = 0
    a_request()
    a_request()
    assert pings["pings"] == 2


def test_a_session_the_server_ended_is_replaced_before_the_next_request(pings):
    first = a_request()
    end_session(first)
    pings["pings"] = 0
    second = a_request()  # within the grace: the socket has the server's goodbye to read
    assert second != first
    assert pings["pings"] == 1


def test_after_an_error_django_checks_the_connection_as_before(pings):
    first = a_request()
    close_old_connections()
    with pytest.raises(OperationalError), connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")
    assert connection.errors_occurred
    pings["pings"] = 0
    assert a_request() != first
    assert pings["pings"] >= 1
