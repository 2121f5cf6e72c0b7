"""Control work never waits behind slow calls: with every step worker busy on HTTP calls, a run of
cheap steps still starts and finishes, because control work (advancing runs, cheap steps) travels on
a queue that only the engine workers consume (settings.DWC_CONTROL_QUEUE)."""

import threading
import time

import pytest
from django.conf import settings
from werkzeug import Response

from tests.workflows.durability.helpers import run_of, wait_for
from tests.workflows.helpers import create
from tests.workflows.workers import start_worker, wait_for_run
from workflows.models import Run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.faults]

CALL_SECONDS = 8


def test_a_run_of_cheap_steps_finishes_while_every_step_worker_waits_on_a_call(user_api, threaded_server):
    calls_started, calls_ended = [], []
    lock = threading.Lock()

    def slow(request):
        with lock:
            calls_started.append(time.monotonic())
        time.sleep(CALL_SECONDS)
        with lock:
            calls_ended.append(time.monotonic())
        return Response('{"ok": true}', content_type="application/json")

    threaded_server.expect_request("/slow").respond_with_handler(slow)
    calling = create(
        user_api,
        {
            "name": "Calls out",
            "nodes": [
                {"key": "fetch", "type": "http_request", "config": {"url": threaded_server.url_for("/slow")}},
                {"key": "after", "type": "transform", "config": {"values": {"ok": "{{ nodes.fetch.output.body.ok }}"}}},
            ],
        },
    )
    cheap = create(
        user_api,
        {
            "name": "Cheap",
            "nodes": [
                {"key": "one", "type": "transform", "config": {"values": {"n": "1"}}},
                {"key": "two", "type": "transform", "config": {"values": {"n": "2"}}, "depends_on": ["one"]},
            ],
        },
    )
    engine = start_worker("control", concurrency=2, queues=settings.DWC_CONTROL_QUEUE)
    steps = start_worker("steps", concurrency=2, queues=",".join(settings.DWC_STEP_QUEUES))
    try:
        calling_runs = [run_of(user_api, calling["id"]) for _ in range(4)]  # two call, two wait for a worker
        wait_for(lambda: len(calls_started) == 2, message="both step workers to be calling")

        run = wait_for_run(run_of(user_api, cheap["id"]), timeout=CALL_SECONDS)
        assert run.status == "succeeded", run.error
        assert calls_ended == [], "the cheap run finished only after a call had ended"

        for run_id in calling_runs:
            assert wait_for_run(run_id, timeout=4 * CALL_SECONDS).status == "succeeded"
    finally:
        engine.stop()
        steps.stop()
    assert Run.objects.filter(pk__in=calling_runs, status="succeeded").count() == 4
