"""Crashes, lost brokers and repeated messages: PostgreSQL is the truth, the broker only a doorbell.

Every test owns its worker processes and kills them by PID. The test process plays the beat
task's part by calling `recovery.recover()` in a loop, with the engine's timings shortened.
"""

import signal
import subprocess
import threading
import time
from contextlib import contextmanager

import pytest
from werkzeug import Response

from tests.processes import free_port
from tests.workflows.durability.helpers import recover_until_finished, run_of, wait_for
from tests.workflows.helpers import create
from tests.workflows.workers import start_worker, worker_env
from workflows.engine import recovery
from workflows.models import Run, StepRun

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.faults]

FAST_CLOCK = {"DWC_HEARTBEAT_SECONDS": "0.5", "DWC_STEP_LEASE_SECONDS": "3", "DWC_LOST_MESSAGE_SECONDS": "3"}


@pytest.fixture(autouse=True)
def fast_clock(settings):
    for name, value in FAST_CLOCK.items():
        setattr(settings, name, float(value))


def slow_first_call(calls: list, seconds: float = 6):
    """A handler whose first call hangs (the worker is killed meanwhile); later ones answer at once."""

    def handler(request):
        calls.append(time.monotonic())
        if len(calls) == 1:
            time.sleep(seconds)
        return Response('{"ok": true}', content_type="application/json")

    return handler


def test_a_killed_worker_loses_no_idempotent_step(user_api, threaded_server):
    calls: list = []
    threaded_server.expect_request("/slow").respond_with_handler(slow_first_call(calls))
    # No retry policy (one attempt): a crash is not the step's failure, so the step runs again anyway.
    body = {
        "name": "Idempotent",
        "nodes": [
            {"key": "fetch", "type": "http_request", "config": {"url": threaded_server.url_for("/slow")}},
            {"key": "after", "content": "{{ nodes.fetch.output.body.ok }}"},
        ],
    }
    workflow = create(user_api, body)
    doomed = start_worker("doomed", env=worker_env(**FAST_CLOCK))
    run_id = run_of(user_api, workflow["id"])
    wait_for(lambda: len(calls) == 1, message="the first call to arrive")
    doomed.signal_group(signal.SIGKILL)
    doomed.popen.wait(10)

    survivor = start_worker("survivor", env=worker_env(**FAST_CLOCK))
    try:
        started = time.monotonic()
        [run] = recover_until_finished([run_id], timeout=60)
        assert time.monotonic() - started < 60
    finally:
        survivor.stop()
    assert run.status == "succeeded", run.error
    fetch = StepRun.objects.get(run_id=run_id, node_key="fetch")
    assert (fetch.attempt, fetch.crashes) == (2, 1)
    assert fetch.worker.startswith("survivor@")
    retrying = run.events.filter(type="step.retrying", step="fetch").get()
    assert retrying.data["error"]["message"] == recovery.WORKER_LOST
    assert StepRun.objects.get(run_id=run_id, node_key="after").output["content"] == "True"


@pytest.mark.parametrize("retry_on_crash", [False, True])
def test_a_killed_worker_does_not_silently_resend_a_webhook(user_api, threaded_server, retry_on_crash):
    calls: list = []
    threaded_server.expect_request("/hook", method="POST").respond_with_handler(slow_first_call(calls))
    config = {"url": threaded_server.url_for("/hook"), "body": {"n": 1}}
    if retry_on_crash:
        config["retry_on_crash"] = True
    body = {
        "name": "Deliver once",
        "nodes": [
            {"key": "hook", "type": "webhook", "config": config, "retry": {"max_attempts": 2, "backoff_seconds": 0}}
        ],
    }
    workflow = create(user_api, body)
    doomed = start_worker("doomed", env=worker_env(**FAST_CLOCK))
    run_id = run_of(user_api, workflow["id"])
    wait_for(lambda: len(calls) == 1, message="the webhook call to arrive")
    doomed.signal_group(signal.SIGKILL)
    doomed.popen.wait(10)

    survivor = start_worker("survivor", env=worker_env(**FAST_CLOCK))
    try:
        [run] = recover_until_finished([run_id], timeout=60)
    finally:
        survivor.stop()
    hook = StepRun.objects.get(run_id=run_id, node_key="hook")
    if retry_on_crash:
        assert run.status == "succeeded", run.error
        assert (hook.attempt, len(calls)) == (2, 2)
    else:
        assert run.status == "failed"
        assert hook.status == "failed" and hook.error["message"] == recovery.INTERRUPTED
        time.sleep(1)
        assert len(calls) == 1


def test_a_step_that_keeps_losing_its_worker_fails_at_the_crash_limit(user_api, threaded_server, settings):
    settings.DWC_STEP_CRASH_LIMIT = 1
    calls: list = []

    def hang(request):
        calls.append(time.monotonic())
        time.sleep(10)
        return Response("{}", content_type="application/json")

    threaded_server.expect_request("/poison").respond_with_handler(hang)
    body = {
        "name": "Poison",
        "nodes": [{"key": "fetch", "type": "http_request", "config": {"url": threaded_server.url_for("/poison")}}],
    }
    workflow = create(user_api, body)
    run_id = run_of(user_api, workflow["id"])
    for crash in (1, 2):
        doomed = start_worker(f"doomed{crash}", env=worker_env(**FAST_CLOCK))
        try:
            wait_for(lambda crash=crash: len(calls) == crash, timeout=60, message=f"call {crash} to arrive")
        finally:  # never left running to take later tests' messages
            doomed.signal_group(signal.SIGKILL)
            doomed.popen.wait(10)
        if crash == 1:
            wait_for(lambda: recovery.recover()["lost_workers"] == 1, message="the lost worker to be noticed")
    [run] = recover_until_finished([run_id], timeout=30)
    fetch = StepRun.objects.get(run_id=run_id, node_key="fetch")
    assert run.status == "failed"
    assert (fetch.status, fetch.attempt, fetch.crashes) == ("failed", 2, 1)
    assert fetch.error["message"] == recovery.CRASHED_TOO_OFTEN.format(1)
    assert len(calls) == 2


@contextmanager
def celery_broker(url: str):
    """Point this process's Celery producer at another broker (the workers under test use it)."""
    from config.celery import app

    def reset() -> None:
        app._pool = None
        app.amqp._producer_pool = None

    previous = app.conf.broker_url
    app.conf.broker_url = url
    reset()
    try:
        yield
    finally:
        app.conf.broker_url = previous
        reset()


def start_redis(port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(port=port)
    wait_for(lambda: _pings(client), timeout=10, message="redis to start")
    return process


def _pings(client) -> bool:
    try:
        return client.ping()
    except Exception:
        return False


def test_fifty_runs_survive_a_broker_restart_that_loses_every_message(user_api):
    port = free_port()
    broker_url = f"redis://127.0.0.1:{port}/0"
    redis_process = start_redis(port)
    workers = [
        start_worker(f"w{index}", concurrency=4, env=worker_env(REDIS_URL=broker_url, **FAST_CLOCK))
        for index in range(2)
    ]
    body = {
        "name": "In flight",
        "nodes": [
            {"key": "first", "type": "transform", "config": {"values": {"n": "{{ input.n }}"}}},
            {"key": "pause", "type": "delay", "config": {"seconds": 2}},
            {"key": "last", "type": "transform", "config": {"values": {"n": "{{ nodes.first.output.n }}"}}},
        ],
    }
    workflow = create(user_api, body)
    try:
        with celery_broker(broker_url):
            run_ids = []
            for n in range(50):
                answer = user_api.post(f"/api/v3/workflows/{workflow['id']}/runs", {"input": {"n": n}}, format="json")
                run_ids.append(answer.json()["id"])
            wait_for(
                lambda: Run.objects.filter(pk__in=run_ids, status="waiting").count() >= 10, message="runs in flight"
            )
            redis_process.kill()
            redis_process.wait(10)
            lost_at = time.monotonic()
            redis_process = start_redis(port)

            def supervise() -> None:
                # kombu's Redis transport can crash a worker when its broker vanishes ("Unrecoverable
                # error" while restoring unacked messages); in production systemd or Docker restarts
                # it, and so does this stand-in.
                for index, worker in enumerate(workers):
                    if worker.popen.poll() is not None:
                        env = worker_env(REDIS_URL=broker_url, **FAST_CLOCK)
                        workers[index] = start_worker(f"w{index}-again", concurrency=4, env=env)

            runs = recover_until_finished(run_ids, timeout=120, supervise=supervise)
            recovery_seconds = time.monotonic() - lost_at
    finally:
        for worker in workers:
            worker.stop()
        redis_process.kill()
    assert [run.status for run in runs] == ["succeeded"] * 50
    outputs = {run.input["n"]: run.output["last"]["n"] for run in runs}
    assert outputs == {n: n for n in range(50)}
    assert recovery_seconds < 120


def test_every_step_message_delivered_twice_executes_each_step_once(user_api, threaded_server):
    calls: dict[str, int] = {}
    lock = threading.Lock()

    def count(request):
        with lock:
            calls[request.path] = calls.get(request.path, 0) + 1
        return Response("{}", content_type="application/json")

    threaded_server.expect_request("/a").respond_with_handler(count)
    threaded_server.expect_request("/b").respond_with_handler(count)
    body = {
        "name": "Twice",
        "nodes": [
            {"key": "a", "type": "webhook", "config": {"url": threaded_server.url_for("/a"), "body": {}}},
            {"key": "b", "type": "webhook", "config": {"url": threaded_server.url_for("/b"), "body": {}}},
            {"key": "c", "content": "done"},
        ],
    }
    workflow = create(user_api, body)
    worker = start_worker(
        "twice",
        env=worker_env(**FAST_CLOCK),
        program=[".venv/bin/python", "-m", "tests.workflows.durability.duplicating_worker"],
    )
    try:
        run_ids = [run_of(user_api, workflow["id"]) for _ in range(5)]
        runs = recover_until_finished(run_ids, timeout=60)
    finally:
        worker.stop()
    assert {run.status for run in runs} == {"succeeded"}
    assert calls == {"/a": 5, "/b": 5}
    for run in runs:
        started = list(run.events.filter(type="step.started").values_list("step", flat=True))
        assert sorted(started) == ["a", "b", "c"]
        assert set(StepRun.objects.filter(run=run).values_list("attempt", flat=True)) == {1}
