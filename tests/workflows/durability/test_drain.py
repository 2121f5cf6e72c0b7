"""Draining the engine for a deploy: drain during 100 runs, restart the workers, resume. Every run
completes and no step runs twice (each call the steps make is counted by a local server)."""

import threading
import time
from collections import Counter

import pytest
from werkzeug import Response

from tests.conftest import client_for
from tests.factories import UserFactory
from tests.workflows.durability.helpers import recover_until_finished, wait_for
from tests.workflows.helpers import create
from tests.workflows.workers import start_worker, worker_env
from workflows.models import Run, StepRun

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.faults]

RUNS = 100


def test_drain_during_a_hundred_runs_restart_the_workers_and_resume(user_api, threaded_server):
    calls: Counter = Counter()
    lock = threading.Lock()

    def counted(request):
        with lock:
            calls[(request.path, request.args["run"])] += 1
        time.sleep(0.05)  # steps that take a moment, so that some are running when the drain comes
        return Response('{"ok": true}', content_type="application/json")

    threaded_server.expect_request("/first").respond_with_handler(counted)
    threaded_server.expect_request("/second").respond_with_handler(counted)
    call = "{{ run.id }}"
    workflow = create(
        user_api,
        {
            "name": "Deployed through",
            "nodes": [
                {
                    "key": "first",
                    "type": "http_request",
                    "config": {"url": threaded_server.url_for("/first"), "query": {"run": call}},
                },
                {"key": "middle", "type": "text", "content": "between"},
                {
                    "key": "second",
                    "type": "http_request",
                    "config": {"url": threaded_server.url_for("/second"), "query": {"run": call}},
                },
            ],
        },
    )
    staff_api = client_for(UserFactory(is_staff=True))
    worker = start_worker("before-deploy", env=worker_env(), concurrency=4)
    answer = user_api.post(
        f"/api/v3/workflows/{workflow['id']}/runs/batch", {"inputs": [{} for _ in range(RUNS)]}, format="json"
    )
    assert answer.status_code == 202, answer.content
    run_ids = [run["id"] for run in answer.json()]
    wait_for(lambda: sum(calls.values()) >= 20, message="some runs under way")

    assert staff_api.post("/api/v3/engine/drain", {"reason": "deploy"}, format="json").status_code == 200
    # The workers finish what they hold, then start nothing more.
    wait_for(lambda: staff_api.get("/api/v3/engine").json()["running_steps"] == 0, message="running steps finished")
    at_drain = sum(calls.values())
    time.sleep(1.0)
    assert sum(calls.values()) == at_drain
    assert at_drain < 2 * RUNS, "the drain came after every run had finished: nothing was tested"

    worker.stop()  # the deploy: old workers go, new ones come, still drained
    worker = start_worker("after-deploy", env=worker_env(), concurrency=4)
    time.sleep(1.0)
    assert sum(calls.values()) == at_drain

    assert staff_api.post("/api/v3/engine/resume").status_code == 200
    runs = recover_until_finished(run_ids, timeout=120)
    worker.stop()

    assert Counter(run.status for run in runs) == {"succeeded": RUNS}
    assert all(calls[("/first", run_id)] == 1 and calls[("/second", run_id)] == 1 for run_id in run_ids), calls
    assert sum(calls.values()) == 2 * RUNS
    # Nothing ran twice: no step needed a second attempt.
    assert not StepRun.objects.filter(run_id__in=run_ids, attempt__gt=1).exists()
    assert Run.objects.filter(pk__in=run_ids, status="succeeded").count() == RUNS
