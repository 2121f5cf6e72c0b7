"""The database going away while workers record the results of calls they made: no call is reported
lost and none is sent twice. The workers reach PostgreSQL through a proxy the test cuts
(tests/fault_proxy.py), as a restart of the database server looks to them; the test process plays
the beat's recovery task on a direct connection. The last test cuts one COMMIT in-process, at the moment
where a cut is hardest to tell: while a claim commits."""

import threading
import time
from collections import Counter
from unittest.mock import patch

import pytest
from django.db import DEFAULT_DB_ALIAS, OperationalError, connections
from werkzeug import Response

from tests.fault_proxy import FaultProxy, database_upstream, database_url_through
from tests.workflows.durability.helpers import recover_until_finished, run_of, wait_for
from tests.workflows.helpers import create
from tests.workflows.workers import start_worker, worker_env
from workflows.engine import dispatch, execute
from workflows.models import Run, StepRun
from workflows.services.runs import run_trigger
from workflows.services.workflows import workflow_create

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.faults]

RUNS = 200
# The lease is longer than the outage, as in production (30 s against a restart's few seconds);
# lost messages are re-sent soon, so that claims refused during the outage are retried quickly.
CLOCK = {"DWC_HEARTBEAT_SECONDS": "1", "DWC_STEP_LEASE_SECONDS": "20", "DWC_LOST_MESSAGE_SECONDS": "3"}


@pytest.fixture(autouse=True)
def clock(settings):
    for name, value in CLOCK.items():
        setattr(settings, name, float(value))


def why_not_succeeded(runs, worker) -> str:
    """What each run that did not succeed says about itself and its steps, and the worker's last words."""
    lines = []
    for run in runs:
        if run.status == "succeeded":
            continue
        lines.append(f"run {run.pk}: {run.status} {run.error}")
        for step in StepRun.objects.filter(run=run).order_by("node_key"):
            lines.append(f"  {step.node_key}: {step.status} attempt={step.attempt} crashes={step.crashes} {step.error}")
    return "\n".join([*lines, f"worker output ({worker.log.name}), its end:", worker.output()[-20000:]])


def test_a_database_outage_while_results_are_recorded_sends_each_call_once(user_api, threaded_server):
    calls: Counter = Counter()
    lock = threading.Lock()

    def handler(request):
        with lock:
            calls[request.get_data(as_text=True)] += 1
        time.sleep(0.4)
        return Response('{"ok": true}', content_type="application/json")

    threaded_server.expect_request("/orders", method="POST").respond_with_handler(handler)
    body = {
        "name": "Place order",
        "nodes": [
            {
                "key": "order",
                "type": "http_request",
                "config": {"url": threaded_server.url_for("/orders"), "method": "POST", "body": "{{ run.id }}"},
            },
            {"key": "after", "content": "{{ nodes.order.output.body.ok }}"},
        ],
    }
    workflow = create(user_api, body)
    proxy = FaultProxy(database_upstream())
    worker = start_worker("blip", concurrency=16, env=worker_env(DATABASE_URL=database_url_through(proxy), **CLOCK))
    try:
        run_ids = [run_of(user_api, workflow["id"]) for _ in range(RUNS)]
        wait_for(lambda: sum(calls.values()) >= 40, message="calls to be under way")
        proxy.cut()  # calls in flight now end while their worker cannot reach the database
        time.sleep(6)
        proxy.restore()
        runs = recover_until_finished(run_ids, timeout=180)
    finally:
        worker.stop()
        proxy.close()

    assert Counter(run.status for run in runs) == {"succeeded": RUNS}, why_not_succeeded(runs, worker)
    assert set(calls) == set(run_ids)
    assert max(calls.values()) == 1, [run for run, count in calls.items() if count > 1]
    orders = StepRun.objects.filter(run_id__in=run_ids, node_key="order")
    assert set(orders.values_list("attempt", "crashes")) == {(1, 0)}
    assert "the database is unreachable; trying again" in worker.output()


def commits_losing_their_answer(*, reaching_the_database: bool):
    """The first COMMIT ends as when the connection is cut while it is under way: with the connection
    lost and an OperationalError, after PostgreSQL committed it (its answer lost) or before it got it."""
    wrapper = connections[DEFAULT_DB_ALIAS]
    real_commit, lost = wrapper._commit, []

    def commit():
        if lost:
            return real_commit()
        lost.append(True)
        if reaching_the_database:
            real_commit()
        wrapper.connection.close()
        raise OperationalError("consuming input failed: server closed the connection unexpectedly")

    return patch.object(wrapper, "_commit", commit)


@pytest.mark.parametrize("reaching_the_database", [True, False], ids=["committed", "not committed"])
def test_a_claim_whose_commit_lost_its_connection_makes_its_call_once(
    user, threaded_server, settings, reaching_the_database
):
    """Committed or not, the claim is the worker's only if the database says so once it answers: the call
    is made once, and a committed claim is not left running for recover() to fail as interrupted."""
    settings.DWC_OUTBOUND_ALLOWLIST = ["127.0.0.1"]
    threaded_server.expect_request("/orders", method="POST").respond_with_json({"ok": True})
    body = {
        "key": "order",
        "type": "http_request",
        "config": {"url": threaded_server.url_for("/orders"), "method": "POST"},
    }
    workflow = workflow_create(
        actor=user, workspace=user.memberships.get().workspace, data={"name": "Order", "nodes": [body]}
    )
    with patch.object(dispatch, "send"):
        run, _ = run_trigger(workflow=workflow, input={}, trigger="api", actor=user)
        execute.advance(run.pk)
    order = StepRun.objects.get(run=run, node_key="order")

    with commits_losing_their_answer(reaching_the_database=reaching_the_database):
        execute.execute_step(order.pk, order.attempt, run_id=str(run.pk))

    order.refresh_from_db()
    assert (order.status, order.attempt, order.crashes) == ("succeeded", 1, 0), order.error
    assert Run.objects.get(pk=run.pk).status == "succeeded"
    assert len(threaded_server.log) == 1
