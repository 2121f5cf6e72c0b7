"""Run events from a real Celery worker to real clients: a websocket on daphne and the SSE twin.

Distributed mode: the worker publishes through the Redis channel layer, daphne forwards. The
worker is this module's own; the engine tests' worker (a package fixture of tests/workflows/engine)
is stopped by then, and the test checks that nobody else answers on the broker.
"""

import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from rest_framework_simplejwt.tokens import AccessToken
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from config.celery import app as celery_app
from tests.factories import UserFactory
from tests.processes import Process, free_port, wait_for_http
from tests.workflows.workers import start_worker, wait_for_run, worker_env
from workflows.consumers import CLOSE_FORBIDDEN
from workflows.models import RunEvent

pytestmark = pytest.mark.django_db(transaction=True)

WORKER_NAME = "realtime-e2e"
DELAY_SECONDS = 1
THREE_NODES = {
    "name": "Realtime",
    "nodes": [
        {"key": "draft", "type": "text", "content": "Hello {{ input.name }}"},
        {"key": "pause", "type": "delay", "config": {"seconds": DELAY_SECONDS}},
        {"key": "shout", "type": "transform", "config": {"values": {"loud": "{{ nodes.draft.content | upper }}"}}},
    ],
}
# What a watcher must see, in this order; other events (step.queued, step.waiting, ...) interleave.
MILESTONES = [
    ("run.started", None),
    *[(f"step.{status}", key) for key in ("draft", "pause", "shout") for status in ("started", "succeeded")],
    ("run.succeeded", None),
]


@pytest.fixture
def realtime_stack(transactional_db):
    """daphne and one Celery worker, on the test database and Redis; yields the server's base URL."""
    port = free_port()
    daphne = Process(
        [".venv/bin/daphne", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"], worker_env(), "daphne"
    )
    worker = None
    try:
        worker = start_worker(WORKER_NAME, concurrency=4)
        base = f"http://127.0.0.1:{port}"
        wait_for_http(f"{base}/health", daphne)
        yield base
    finally:
        if worker is not None:
            worker.stop()
        daphne.stop()


def bearer(user) -> str:
    return str(AccessToken.for_user(user))


def is_subsequence(wanted: list, items: list) -> bool:
    remaining = iter(items)
    return all(any(item == want for item in remaining) for want in wanted)


def milestones_of(events: list[dict]) -> list[tuple]:
    return [(event["type"], event["step"] if event["type"].startswith("step.") else None) for event in events]


def sse_events(base: str, run_id: str, token: str, last_event_id: int | None = None) -> list[dict]:
    """Read the run's event stream until the server ends it; every frame's id must be its event's seq."""
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    events, frame = [], {}
    timeout = httpx.Timeout(5, read=10)
    with httpx.stream("GET", f"{base}/api/v3/runs/{run_id}/events", headers=headers, timeout=timeout) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line:
                name, _, value = line.partition(": ")
                frame[name] = value
                continue
            if "data" in frame:
                event = json.loads(frame["data"])
                assert (frame["id"], frame["event"]) == (str(event["seq"]), event["type"]), frame
                events.append(event)
            frame = {}
    return events


def test_a_workers_run_events_reach_websocket_and_sse_clients_in_order(realtime_stack):
    base = realtime_stack
    responders = [name for reply in celery_app.control.ping(timeout=1) for name in reply]
    assert len(responders) == 1 and responders[0].startswith(f"{WORKER_NAME}@"), responders

    owner, stranger = UserFactory(), UserFactory()
    token = bearer(owner)
    ws_base, origin = base.replace("http://", "ws://"), base
    with (
        httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=10) as api,
        ThreadPoolExecutor(max_workers=1) as background,
    ):
        created = api.post("/api/v3/workflows", json=THREE_NODES)
        assert created.status_code == 201, created.text
        workflow_id = created.json()["id"]

        with connect(f"{ws_base}/ws/workflows/{workflow_id}/?token={token}", origin=origin) as watcher:
            assert json.loads(watcher.recv(timeout=5)) == {
                "type": "subscribed",
                "scope": "workflow",
                "workflow": workflow_id,
            }
            started = api.post(f"/api/v3/workflows/{workflow_id}/runs", json={"input": {"name": "Ada"}})
            assert started.status_code == 202, started.text
            run_id = started.json()["id"]
            # Live SSE: connected while the run is going, so it waits on the channel layer for the rest.
            live_sse = background.submit(sse_events, base, run_id, token)

            # Someone else's workflow: closed as forbidden, with no event before the close.
            outsider_url = f"{ws_base}/ws/workflows/{workflow_id}/?token={bearer(stranger)}"
            with connect(outsider_url, origin=origin) as outsider, pytest.raises(ConnectionClosed) as closed:
                leaked = outsider.recv(timeout=5)
                pytest.fail(f"the outsider received {leaked!r}")
            assert closed.value.rcvd.code == CLOSE_FORBIDDEN

            events, deadline = [], time.monotonic() + 20
            while not events or events[-1]["type"] != "run.succeeded":
                assert time.monotonic() < deadline, milestones_of(events)
                events.append(json.loads(watcher.recv(timeout=max(deadline - time.monotonic(), 0.1))))

        assert wait_for_run(run_id, timeout=5).status == "succeeded"
        assert {(event["run"], event["workflow"]) for event in events} == {(run_id, workflow_id)}
        assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
        assert is_subsequence(MILESTONES, milestones_of(events)), milestones_of(events)
        assert events[0]["type"] == "run.created"
        shout = next(event for event in events if event["type"] == "step.succeeded" and event["step"] == "shout")
        assert shout["data"]["output"] == {"loud": "HELLO ADA"}
        # The delay was waited in between, not skipped.
        assert "step.waiting" in [event["type"] for event in events if event["step"] == "pause"]
        assert RunEvent.objects.filter(run_id=run_id).count() == len(events)

        # The live stream ends by itself once the run has finished, with what the websocket got.
        assert live_sse.result(timeout=10) == events
        assert sse_events(base, run_id, token, last_event_id=3) == events[3:]
