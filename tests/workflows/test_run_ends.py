"""workflows.run_ends: a waiter wakes when its run's end is announced, in the embedded mode (inside
the process) and in the distributed one (through Redis), and only then."""

import asyncio
import threading
import time
import uuid

import pytest
from django.conf import settings

from workflows import run_ends

# Long enough that a waiter that was not woken is plain to see.
NOT_WOKEN_SECONDS = 30


@pytest.fixture(params=["embedded", "distributed"])
def mode(request, settings):
    if request.param == "embedded":
        settings.REDIS_URL = ""
    return request.param


def envelope(run_id, event_type: str) -> dict:
    return {"type": event_type, "run": str(run_id)}


def seconds_until_woken(expectation: run_ends.Expectation, seconds: float = NOT_WOKEN_SECONDS) -> float:
    async def wait() -> float:
        started = time.monotonic()
        await expectation.wait(seconds)
        return time.monotonic() - started

    return asyncio.run(wait())


def later(function, *args) -> None:
    """Call `function(*args)` from another thread, as a worker's commit would, while the test waits."""
    threading.Timer(0.2, function, args).start()


@pytest.mark.parametrize("status", ["succeeded", "failed", "cancelled"])
def test_the_announced_end_of_a_run_wakes_its_waiter_at_once(mode, status):
    run_id = uuid.uuid4()
    with run_ends.expect(run_id) as expectation:
        later(run_ends.announce, [envelope(uuid.uuid4(), "run.started"), envelope(run_id, f"run.{status}")])
        assert seconds_until_woken(expectation) < NOT_WOKEN_SECONDS / 3


def test_other_events_and_other_runs_wake_nobody(mode):
    run_id = uuid.uuid4()
    with run_ends.expect(run_id) as expectation:
        later(run_ends.announce, [envelope(run_id, "run.waiting"), envelope(uuid.uuid4(), "run.succeeded")])
        assert seconds_until_woken(expectation, 1.0) >= 0.9


def test_an_end_announced_before_the_wait_begins_is_not_lost(mode):
    run_id = uuid.uuid4()
    with run_ends.expect(run_id) as expectation:
        run_ends.announce([envelope(run_id, "run.succeeded")])
        # Through Redis the announcement takes a moment to come back: let it arrive before waiting.
        time.sleep(0.5)
        assert seconds_until_woken(expectation) < 1


def test_every_waiter_of_a_run_wakes_and_a_closed_one_is_forgotten(mode):
    run_id = uuid.uuid4()
    first, second = run_ends.expect(run_id), run_ends.expect(run_id)
    second.close()
    try:
        later(run_ends.announce, [envelope(run_id, "run.failed")])
        assert seconds_until_woken(first) < NOT_WOKEN_SECONDS / 3
    finally:
        first.close()
    assert str(run_id) not in run_ends._run_ends.expected


def test_wake_all_wakes_every_waiter(mode):
    expectations = [run_ends.expect(uuid.uuid4()) for _ in range(3)]
    try:
        later(run_ends.wake_all)

        async def all_woken() -> float:
            started = time.monotonic()
            await asyncio.gather(*(expectation.wait(NOT_WOKEN_SECONDS) for expectation in expectations))
            return time.monotonic() - started

        assert asyncio.run(all_woken()) < NOT_WOKEN_SECONDS / 3
    finally:
        for expectation in expectations:
            expectation.close()


def test_the_channel_names_the_redis_database():
    assert run_ends.channel("redis://127.0.0.1:6379/11") == "dwc.run-ends.11"
    assert run_ends.channel("redis://127.0.0.1:6379") == "dwc.run-ends.0"
    assert run_ends.channel(settings.REDIS_URL).startswith("dwc.run-ends.")
