"""One slow request must not delay anyone else's, on real servers: daphne (`manage.py serve`, the
embedded mode) and gunicorn (`config/gunicorn.py`, the distributed mode's HTTP).

Django's ASGI handler runs each request's synchronous code in a thread of the request's own, so a
view that waits (on a row lock, say) holds only its own thread; gunicorn serves from a pool of
threads per process. What stalled everyone under daphne was a regular expression: Python's `re`
keeps the GIL for the whole match, so no thread ran until it gave up. User patterns now run on RE2
(workflows/engine/regex.py).
"""

import contextlib
import threading
import time

import httpx
import pytest
from django.db import transaction

from accounts.services import user_register
from tests.processes import serving
from tests.workflows.workers import worker_env
from workflows.models import Run
from workflows.services.workflows import workflow_create

PASSWORD = "a-Sturdy-passphrase-42"
SLOW_SECONDS = 3
# A request held up by another waits seconds (SLOW_SECONDS, or the pool's timeout); an answer within
# FAST_MS was not held up. Generous, as a busy 2-CPU CI machine answers /health in 100 ms at times.
FAST_MS = 500
POOL_SIZE = 3  # database connections of the server: far fewer than the event streams below
STREAMS = 20  # more than any fixed pool of threads in front of Django would have


@pytest.fixture
def server(request, transactional_db):
    # The environment the engine tests' workers get: this test database, Redis and the same keys.
    env = worker_env(DATABASE_POOL_MAX_SIZE=str(POOL_SIZE))
    with serving(getattr(request, "param", "daphne"), env) as (base, _):
        yield base


@pytest.fixture
def member(server):
    """A user (with a workflow whose input is checked by a pattern) and an API client logged in as them."""
    user = user_register(email="slow@example.com", password=PASSWORD)
    schema = {"type": "object", "properties": {"name": {"type": "string", "pattern": "^(a+)+$"}}}
    data = {"name": "Patterned", "status": "active", "input_schema": schema, "nodes": [NODE]}
    workflow = workflow_create(actor=user, workspace=user.memberships.get().workspace, data=data)
    tokens = httpx.post(f"{server}/api/v3/auth/token", json={"email": user.email, "password": PASSWORD})
    assert tokens.status_code == 200, tokens.text
    headers = {"Authorization": f"Bearer {tokens.json()['access']}"}
    with httpx.Client(base_url=server, headers=headers, timeout=60) as api:
        yield api, workflow


NODE = {"key": "first", "type": "transform", "config": {"values": {"x": "1"}}}


def answer_times_ms(api: httpx.Client) -> dict[str, list[float]]:
    """GET /health and GET /auth/me three times each, on a connection already open: milliseconds."""
    times: dict[str, list[float]] = {"/health": [], "/api/v3/auth/me": []}
    for _ in range(3):
        for path, measured in times.items():
            started = time.perf_counter()
            assert api.get(path).status_code == 200
            measured.append((time.perf_counter() - started) * 1000)
    return times


def in_background(function) -> dict:
    """Run `function` in a thread; the returned dict gets its "result" and "seconds" once it ends."""
    outcome: dict = {}

    def run() -> None:
        started = time.monotonic()
        outcome["result"] = function()
        outcome["seconds"] = time.monotonic() - started

    outcome["thread"] = threading.Thread(target=run)
    outcome["thread"].start()
    return outcome


@pytest.mark.parametrize("server", ["daphne", "gunicorn"], indirect=True)
def test_a_request_waiting_on_a_lock_delays_no_one_else(member):
    api, workflow = member
    run_id = api.post(f"/api/v3/workflows/{workflow.pk}/runs", json={"input": {"name": "aaa"}}).json()["id"]
    with httpx.Client(base_url=str(api.base_url), headers=dict(api.headers), timeout=60) as other:
        answer_times_ms(other)  # warm: connection, authentication caches
        with transaction.atomic():
            Run.objects.select_for_update().get(pk=run_id)  # the cancel below waits for this lock
            cancel = in_background(lambda: api.post(f"/api/v3/runs/{run_id}/cancel").status_code)
            time.sleep(0.5)
            during = answer_times_ms(other)
            time.sleep(SLOW_SECONDS - 0.5)
        cancel["thread"].join()
    assert all(ms < FAST_MS for times in during.values() for ms in times), during
    assert cancel["result"] == 202
    assert cancel["seconds"] >= SLOW_SECONDS - 0.5


def test_a_catastrophic_pattern_delays_no_one_else(member):
    api, workflow = member
    with httpx.Client(base_url=str(api.base_url), headers=dict(api.headers), timeout=60) as other:
        answer_times_ms(other)
        # Under Python's `re`, about 5 s here, all of it with every thread of the server stopped.
        trigger = in_background(
            lambda: api.post(f"/api/v3/workflows/{workflow.pk}/runs", json={"input": {"name": "a" * 27 + "!"}})
        )
        time.sleep(0.2)
        during = answer_times_ms(other)
        trigger["thread"].join()
    assert trigger["result"].status_code == 400
    assert "does not match" in trigger["result"].text
    assert all(ms < FAST_MS for times in during.values() for ms in times), during


def test_open_event_streams_hold_no_thread_or_database_connection(member, server):
    api, workflow = member
    run_id = api.post(f"/api/v3/workflows/{workflow.pk}/runs", json={"input": {}}).json()["id"]  # stays queued
    headers = {**api.headers, "Accept": "text/event-stream"}
    with httpx.Client(base_url=server, headers=headers, timeout=30) as streams, contextlib.ExitStack() as open_streams:
        for _ in range(STREAMS):
            response = open_streams.enter_context(streams.stream("GET", f"/api/v3/runs/{run_id}/events"))
            assert response.status_code == 200
            assert next(response.iter_lines()).startswith("retry:")
        with httpx.Client(base_url=server, headers=dict(api.headers), timeout=60) as other:
            answer_times_ms(other)
            during = answer_times_ms(other)
    assert all(ms < FAST_MS for times in during.values() for ms in times), during
