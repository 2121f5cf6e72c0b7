"""Both modes end to end, each with real processes: the embedded `make run`, and the distributed
server with a separate Celery worker on PostgreSQL and Redis. Plus the websocket ping against a real
server."""

import json
import signal
import threading
import time

import httpx
import pytest
from django.conf import settings
from django.db import connection
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.factories import PASSWORD, UserFactory
from tests.processes import (
    Process,
    clean_env,
    database_url_for_subprocesses,
    free_port,
    serving,
    wait_for_http,
    wait_until,
)
from workflows.models import Run
from workflows.services.webhooks import webhook_create
from workflows.services.workflows import workflow_create

STRONG = "a-Sturdy-passphrase-42"
PING_DELAY_MS = 1500


def register_and_login(base: str) -> httpx.Client:
    created = httpx.post(f"{base}/api/v3/auth/register", json={"email": "e2e@example.com", "password": STRONG})
    assert created.status_code == 201, created.text
    tokens = httpx.post(f"{base}/api/v3/auth/token", json={"email": "e2e@example.com", "password": STRONG})
    assert tokens.status_code == 200, tokens.text
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {tokens.json()['access']}"})


def assert_background_task_runs_after_the_request_returned(api: httpx.Client) -> dict:
    """A worker ping sleeps PING_DELAY_MS in the worker: the request must not wait for it."""
    started = time.monotonic()
    enqueued = api.post("/api/v3/system/worker-pings", json={"delay_ms": PING_DELAY_MS})
    request_seconds = time.monotonic() - started
    assert enqueued.status_code == 202, enqueued.text
    assert enqueued.json()["status"] == "queued"
    assert request_seconds < PING_DELAY_MS / 1000
    ping_url = f"/api/v3/system/worker-pings/{enqueued.json()['id']}"
    assert api.get(ping_url).json()["status"] == "queued"

    done = wait_until(
        lambda: (ping := api.get(ping_url).json())["status"] == "done" and ping,
        timeout=30,
        message="the worker ping to complete",
    )
    assert done["round_trip_ms"] >= PING_DELAY_MS
    assert done["worker"]
    return done


def test_embedded_mode_end_to_end(tmp_path):
    port = free_port()
    server = Process(
        ["make", "run"],
        clean_env(HOST="127.0.0.1", PORT=str(port), DWC_VAR_DIR=str(tmp_path), DWC_ADMIN_PASSWORD=STRONG),
        "embedded",
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/health", server)
        assert (tmp_path / "postgres" / "PG_VERSION").exists()
        status = httpx.get(f"{base}/status").json()
        assert (status["mode"], status["database"], status["broker"], status["workers"]) == (
            "embedded",
            "postgresql (embedded)",
            "memory://localhost/",
            1,
        )
        assert httpx.get(f"{base}/ready").status_code == 200
        admin_login = httpx.post(f"{base}/api/v3/auth/token", json={"email": "admin@example.com", "password": STRONG})
        assert admin_login.status_code == 200

        with register_and_login(base) as api:
            done = assert_background_task_runs_after_the_request_returned(api)
        assert done["worker"].startswith("embedded@")
        assert httpx.get(f"{base}/static/admin/css/base.css").status_code == 200
    finally:
        stop_seconds = server.stop(timeout=10)
    assert stop_seconds < 10, server
    output = server.output()
    assert "Created admin user admin@example.com" in output
    access_lines = [json.loads(line) for line in output.splitlines() if '"dwc.access"' in line]
    assert any(line["path"] == "/api/v3/system/worker-pings" and line["status"] == 202 for line in access_lines)
    assert all(line["request_id"] for line in access_lines)
    assert '"message": "stopped"' in output, output[-3000:]


def distributed_env(**changed: str) -> dict:
    """The environment of a distributed-mode process on the test database and Redis."""
    return clean_env(
        DJANGO_SETTINGS_MODULE="config.settings.base",
        DATABASE_URL=database_url_for_subprocesses(),
        REDIS_URL=settings.REDIS_URL,
        SECRET_KEY=settings.SECRET_KEY,
        CREDENTIALS_KEY=settings.CREDENTIALS_KEY,
        **changed,
    )


@pytest.fixture
def distributed_server(transactional_db):
    port = free_port()
    env = distributed_env()
    server = Process([".venv/bin/python", "manage.py", "serve", "--port", str(port)], env, "server")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/health", server)
        yield base, env
    finally:
        assert server.stop() < 10, server


def test_distributed_mode_end_to_end(distributed_server):
    base, env = distributed_server
    status = httpx.get(f"{base}/status").json()
    assert (status["mode"], status["database"]) == ("distributed", "postgresql (external)")
    worker = Process(
        [
            ".venv/bin/celery",
            "-A",
            "config",
            "worker",
            "--concurrency",
            "1",
            "--without-mingle",
            "--without-gossip",
            "--hostname",
            "e2e@%h",
        ],
        env,
        "worker",
    )
    try:
        wait_until(
            lambda: "ready." in worker.output(), timeout=60, message=lambda: f"the worker to be ready: {worker!r}"
        )
        with register_and_login(base) as api:
            done = assert_background_task_runs_after_the_request_returned(api)
        assert done["worker"].startswith("e2e@")
    finally:
        worker.stop()


def test_websocket_ping_with_a_real_client(distributed_server):
    base, _ = distributed_server
    user = UserFactory()
    access = httpx.post(f"{base}/api/v3/auth/token", json={"email": user.email, "password": PASSWORD}).json()["access"]
    ws_base = base.replace("http://", "ws://")
    origin = base

    with connect(f"{ws_base}/ws/ping/?token={access}", origin=origin) as socket:
        assert json.loads(socket.recv(timeout=5)) == {"type": "hello", "user": str(user.pk)}
        socket.send(json.dumps({"action": "ping"}))
        assert json.loads(socket.recv(timeout=5))["type"] == "pong"

    for url in (f"{ws_base}/ws/ping/", f"{ws_base}/ws/ping/?token=forged"):
        with connect(url, origin=origin) as socket, pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=5)
        assert closed.value.rcvd.code == 4401


def test_serve_stops_cleanly_on_sigint_too(distributed_server):
    # SIGTERM is covered by every fixture teardown; Ctrl-C in a terminal sends SIGINT.
    _base, env = distributed_server
    port = free_port()
    other = Process([".venv/bin/python", "manage.py", "serve", "--port", str(port)], env, "server-sigint")
    wait_for_http(f"http://127.0.0.1:{port}/health", other)
    started = time.monotonic()
    other.popen.send_signal(signal.SIGINT)
    assert other.popen.wait(10) == 0
    assert time.monotonic() - started < 10


def database_sessions() -> int:
    """Connections ever opened to the test database, as PostgreSQL counts them."""
    time.sleep(1.5)  # backends report their statistics about once a second
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


def test_requests_under_daphne_borrow_pooled_database_connections(distributed_server):
    base, _ = distributed_server
    assert httpx.get(f"{base}/ready", timeout=10).status_code == 200  # the pool fills
    before = database_sessions()
    for _ in range(30):
        assert httpx.get(f"{base}/ready", timeout=10).status_code == 200
    # Without the pool every request would open (and authenticate) a connection of its own.
    assert database_sessions() - before <= 2


def test_serve_answers_waiting_webhook_callers_and_exits_promptly_on_sigterm(distributed_server):
    _base, env = distributed_server
    hook, token = fast_webhook()
    port = free_port()
    other = Process([".venv/bin/python", "manage.py", "serve", "--port", str(port)], env, "server-waits")
    wait_for_http(f"http://127.0.0.1:{port}/health", other)
    answers: list = []

    def wait_on_a_run() -> None:
        # No worker runs: the run stays pending, and the caller would wait the full 30 s.
        try:
            answers.append(httpx.post(f"http://127.0.0.1:{port}/hooks/{token}/?wait=30", json={}, timeout=60))
        except httpx.HTTPError as error:
            answers.append(error)

    callers = [threading.Thread(target=wait_on_a_run) for _ in range(5)]
    for caller in callers:
        caller.start()
    try:
        wait_until(
            lambda: Run.objects.filter(workflow=hook.workflow_id).count() == 5,
            timeout=20,
            message=lambda: f"five waiting runs (answers so far: {[getattr(a, 'text', a) for a in answers]})",
        )
        time.sleep(0.5)
        started = time.monotonic()
        other.popen.send_signal(signal.SIGTERM)
        assert other.popen.wait(15) == 0, other
        assert time.monotonic() - started < 10, other
    finally:
        other.stop()  # at once if it already exited
    for caller in callers:
        caller.join(10)
    # Each caller got its run as it stood, not a cut connection: the run was started and is on record.
    assert [getattr(answer, "status_code", answer) for answer in answers] == [202] * 5
    assert {answer.json()["status"] for answer in answers} <= {"pending", "queued", "running"}


def fast_webhook() -> tuple:
    """A webhook on a one-step workflow in the test database, and its token."""
    user = UserFactory()
    workflow = workflow_create(
        actor=user,
        workspace=user.memberships.get().workspace,
        data={
            "name": "Quick",
            "status": "active",
            "nodes": [{"key": "t", "type": "transform", "config": {"values": {}}}],
        },
    )
    return webhook_create(workflow=workflow, actor=user)


def test_serve_wakes_waiting_webhook_callers_when_their_runs_end(transactional_db):
    # The server re-reads a waited-on run only every 30 s: answers within seconds came from the
    # announcement of the run's end, published by the worker process through Redis.
    _, token = fast_webhook()
    env = distributed_env(DWC_WEBHOOK_WAIT_RECHECK_SECONDS="30")
    worker = Process(
        [".venv/bin/celery", "-A", "config", "worker", "--concurrency", "1", "--without-mingle", "--without-gossip"],
        env,
        "worker-wakes",
    )
    try:
        wait_until(lambda: "ready." in worker.output(), timeout=60, message=lambda: f"the worker: {worker!r}")
        with serving("daphne", env) as (base, _server):
            for _ in range(5):
                started = time.monotonic()
                answer = httpx.post(f"{base}/hooks/{token}/?wait=25", json={}, timeout=60)
                assert answer.status_code == 200, answer.text
                assert answer.json()["status"] == "succeeded"
                assert time.monotonic() - started < 10
    finally:
        worker.stop()


def test_waiting_webhook_callers_hold_no_database_connection(distributed_server):
    # A pool of 2 connections, and 4 callers waiting on runs that no worker runs: the next delivery
    # is answered at once, not after the pool's 10 s timeout.
    _base, env = distributed_server
    _, token = fast_webhook()
    answers: list = []

    def wait_on_a_run() -> None:
        answers.append(httpx.post(f"{base}/hooks/{token}/?wait=8", json={}, timeout=60))

    with serving("daphne", {**env, "DATABASE_POOL_MAX_SIZE": "2"}) as (base, _server):
        callers = [threading.Thread(target=wait_on_a_run) for _ in range(4)]
        for caller in callers:
            caller.start()
        wait_until(lambda: Run.objects.count() == 4, timeout=20, message="four waiting callers")
        started = time.monotonic()
        answer = httpx.post(f"{base}/hooks/{token}/", json={}, timeout=60)
        assert answer.status_code == 202, answer.text
        assert time.monotonic() - started < 3
        for caller in callers:
            caller.join(20)
    assert [answer.status_code for answer in answers] == [202] * 4


def test_the_embedded_server_wakes_waiting_webhook_callers_when_their_runs_end(tmp_path):
    # The embedded mode's worker runs inside the server: the announcement never leaves the process.
    port = free_port()
    server = Process(
        ["make", "run"],
        clean_env(
            HOST="127.0.0.1",
            PORT=str(port),
            DWC_VAR_DIR=str(tmp_path),
            DWC_ADMIN_PASSWORD=STRONG,
            DWC_WEBHOOK_WAIT_RECHECK_SECONDS="30",
        ),
        "embedded-wakes",
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/health", server)
        with register_and_login(base) as api:
            nodes = [{"key": "t", "type": "transform", "config": {"values": {"doubled": "{{ input.n * 2 }}"}}}]
            workflow = api.post("/api/v3/workflows", json={"name": "Quick", "status": "active", "nodes": nodes})
            assert workflow.status_code == 201, workflow.text
            created = api.post(f"/api/v3/workflows/{workflow.json()['id']}/webhooks", json={})
            assert created.status_code == 201, created.text
        for n in range(3):
            started = time.monotonic()
            answer = httpx.post(f"{base}/hooks/{created.json()['token']}/?wait=25", json={"n": n}, timeout=60)
            assert answer.status_code == 200, answer.text
            assert answer.json()["output"] == {"t": {"doubled": n * 2}}
            assert time.monotonic() - started < 10
    finally:
        assert server.stop(timeout=10) < 10, server
