"""Run and step timeouts fire at their deadline, whatever the step is doing (waiting, or stuck in a call)."""

import pytest

from tests.workflows.engine.conftest import wait_for_run
from tests.workflows.engine.test_runs import start, steps_of
from tests.workflows.hanging_server import HangingServer
from tests.workflows.helpers import create
from workflows.engine.deadlines import RUN_TIMED_OUT, STEP_TIMED_OUT

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_run_timeout_fails_the_run_within_a_second_of_its_deadline(engine_worker, user_api):
    body = {
        "name": "Too slow",
        "settings": {"timeout": 2},
        "nodes": [{"key": "wait", "type": "delay", "config": {"seconds": 10}}, {"key": "after", "content": "x"}],
    }
    workflow = create(user_api, body)
    run = wait_for_run(start(user_api, workflow["id"])["id"], timeout=8)

    assert run.status == "failed"
    assert run.error == {"type": "timeout", "message": RUN_TIMED_OUT.format(seconds=2)}
    assert 2 <= (run.finished_at - run.started_at).total_seconds() < 3
    assert {key: step.status for key, step in steps_of(run.pk).items()} == {"wait": "cancelled", "after": "cancelled"}


WAITING_NODES = {
    "delay": {"type": "delay", "config": {"seconds": 10}},
    "approval": {"type": "approval", "config": {"message": "Ship it?"}},
}


@pytest.mark.parametrize("kind", WAITING_NODES)
def test_a_step_timeout_fails_a_waiting_step_within_a_second_of_its_deadline(engine_worker, user_api, kind):
    body = {"name": f"Slow {kind}", "nodes": [{"key": "slow", "timeout": 2, **WAITING_NODES[kind]}]}
    workflow = create(user_api, body)
    run = wait_for_run(start(user_api, workflow["id"])["id"], timeout=8)
    step = steps_of(run.pk)["slow"]

    assert (run.status, step.status) == ("failed", "failed")
    assert step.error["message"] == STEP_TIMED_OUT.format(seconds=2)
    assert run.error["message"] == f"Step slow failed: {step.error['message']}"
    assert 2 <= (step.finished_at - step.started_at).total_seconds() < 3
    assert 2 <= (run.finished_at - run.started_at).total_seconds() < 3


def test_a_step_timeout_stops_a_call_that_hangs_within_a_second_of_its_deadline(engine_worker, user_api):
    server = HangingServer()
    body = {
        "name": "Hang",
        "nodes": [{"key": "call", "type": "http_request", "config": {"url": server.url, "timeout": 60}, "timeout": 2}],
    }
    workflow = create(user_api, body)
    run = wait_for_run(start(user_api, workflow["id"])["id"], timeout=8)
    step = steps_of(run.pk)["call"]

    assert (run.status, step.status) == ("failed", "failed")
    # The call's own timeout is cut to the step's deadline; whichever of the two reports first wins.
    assert step.error["type"] in ("EgressTimeout", "TransientError"), step.error
    assert 2 <= (step.finished_at - step.started_at).total_seconds() < 3
    assert server.hung_up.wait(10), "the worker kept the connection open"
