"""Cheap steps travel in batches: a burst of runs costs a few broker messages, and none is left behind."""

import subprocess
import sys
import threading
import time
from unittest.mock import patch

import pytest
from celery.signals import before_task_publish
from django.db import connection

from tests.factories import UserFactory
from tests.processes import PROJECT_DIR
from tests.workflows.engine.conftest import wait_for_run
from tests.workflows.workers import worker_env
from workflows.engine import dispatch, execute
from workflows.engine.transition import transition
from workflows.models import Run, RunEvent, StepRun
from workflows.services.runs import run_trigger, runs_trigger_many
from workflows.services.workflows import workflow_create

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def published():
    """The (task name, args) of every message this process publishes."""
    messages = []
    lock = threading.Lock()  # batches also leave from the dispatcher's timer thread

    def record(sender=None, body=None, **_):
        with lock:
            messages.append((sender, body[0] if body else None))

    before_task_publish.connect(record, weak=False)
    yield messages
    before_task_publish.disconnect(record)


CONFIGS = {"transform": {"values": {"i": 1}}, "delay": {"seconds": 0.2}}


def a_workflow(*types: str):
    user = UserFactory()
    workspace = user.memberships.get().workspace
    nodes = [
        {"key": f"n{index}", "type": node_type, "config": CONFIGS[node_type], "depends_on": []}
        for index, node_type in enumerate(types)
    ]
    workflow = workflow_create(actor=user, workspace=workspace, data={"name": "Batches", "nodes": nodes})
    return user, workflow


def test_a_burst_of_runs_sends_their_cheap_steps_in_a_few_batches(engine_worker, published):
    user, workflow = a_workflow("transform")

    runs = [run_trigger(workflow=workflow, input={}, trigger="api", actor=user)[0] for _ in range(40)]

    for run in runs:
        assert wait_for_run(run.pk).status == "succeeded"
    batches = [args[0] for task, args in published if task == "workflows.tasks.execute_steps"]
    assert not [task for task, _ in published if task == "workflows.tasks.execute_step"]
    sent = [step_id for batch in batches for step_id, _attempt, _run in batch]
    assert sorted(sent) == sorted(str(step.pk) for step in StepRun.objects.filter(run__in=runs))
    assert len(batches) < len(runs)  # 40 calls in a tight loop share messages
    assert all(len(batch) <= dispatch.BATCH_SIZE for batch in batches)
    for run in runs:  # each step ran once, recorded as usual
        assert list(RunEvent.objects.filter(run=run).order_by("seq").values_list("type", flat=True)) == [
            "run.created",
            "run.started",
            "step.queued",
            "step.started",
            "step.succeeded",
            "run.succeeded",
        ]


def test_a_big_batch_is_split_so_that_workers_share_it(engine_worker, published):
    user, workflow = a_workflow("transform")

    runs = runs_trigger_many(workflow=workflow, inputs=[{"n": index} for index in range(60)], trigger="api", actor=user)

    for run in runs:
        assert wait_for_run(run.pk).status == "succeeded"
    batches = [args[0] for task, args in published if task == "workflows.tasks.execute_steps"]
    assert [len(batch) for batch in batches] == [25, 25, 10]


def test_slow_steps_keep_a_message_each_and_cheap_ones_after_them_are_batched(engine_worker, published):
    user, workflow = a_workflow("delay", "transform")  # both are roots

    run, _ = run_trigger(workflow=workflow, input={}, trigger="api", actor=user)

    assert wait_for_run(run.pk, timeout=30).status == "succeeded"
    single = [args for task, args in published if task == "workflows.tasks.execute_step"]
    batched = [args[0] for task, args in published if task == "workflows.tasks.execute_steps"]
    steps = {step.node_key: str(step.pk) for step in Run.objects.get(pk=run.pk).steps.all()}
    assert [args[0] for args in single] == [steps["n0"]]
    assert [[step_id for step_id, _, _ in batch] for batch in batched] == [[steps["n1"]]]


def queued_steps(count: int) -> list[tuple[str, int, str]]:
    """`count` started single-transform runs, as the batch messages name their steps (no worker runs them)."""
    user, workflow = a_workflow("transform")
    with patch.object(dispatch, "send"):  # keep them queued
        runs = runs_trigger_many(workflow=workflow, inputs=[{}] * count, trigger="api", actor=user)
    return [(str(step.pk), step.attempt, str(step.run_id)) for step in StepRun.objects.filter(run__in=runs)]


def test_a_batch_runs_each_step_once_and_records_each_run_as_a_single_step_would():
    first, second = queued_steps(2)

    dispatches = execute.execute_cheap_steps([first, second, first], worker="batch-worker")

    assert dispatches == []
    for step_id, _attempt, run_id in (first, second):
        assert Run.objects.get(pk=run_id).status == "succeeded"
        step = StepRun.objects.get(pk=step_id)
        assert (step.status, step.attempt, step.worker, step.output) == ("succeeded", 1, "batch-worker", {"i": 1})
        assert list(RunEvent.objects.filter(run_id=run_id).values_list("type", flat=True).order_by("seq"))[-3:] == [
            "step.started",
            "step.succeeded",
            "run.succeeded",
        ]


def test_a_batch_does_not_wait_for_a_run_another_transaction_holds_but_runs_its_step_after():
    free, held = queued_steps(2)
    holding, release = threading.Event(), threading.Event()

    def hold_the_run():
        with transition() as tx:
            tx.lock(held[2])
            holding.set()
            release.wait(10)
        connection.close()

    holder = threading.Thread(target=hold_the_run)
    holder.start()
    assert holding.wait(5)
    batch = threading.Thread(target=lambda: (execute.execute_cheap_steps([free, held], worker="w"), connection.close()))
    batch.start()
    try:
        # The free run's step commits while the other run is still held: the batch did not wait for it
        # while holding the free run's lock.
        deadline = time.monotonic() + 5
        while Run.objects.get(pk=free[2]).status != "succeeded":
            assert time.monotonic() < deadline, "the batch waited for the held run"
            time.sleep(0.02)
        assert Run.objects.get(pk=held[2]).status == "running"
    finally:
        release.set()
        holder.join(10)
    batch.join(10)
    assert Run.objects.get(pk=held[2]).status == "succeeded"


def test_a_process_that_exits_right_after_starting_runs_still_sends_their_last_batch(engine_worker):
    user, workflow = a_workflow("transform")
    script = (
        "import django; django.setup()\n"
        "from accounts.models import User\n"
        "from workflows.models import Workflow\n"
        "from workflows.services.runs import run_trigger\n"
        f"user, workflow = User.objects.get(pk='{user.pk}'), Workflow.objects.get(pk='{workflow.pk}')\n"
        "for _ in range(3):\n"  # the 2nd and 3rd wait for the interval to end; the process does not
        "    print(run_trigger(workflow=workflow, input={}, trigger='api', actor=user)[0].pk)\n"
    )
    started = subprocess.run(
        [sys.executable, "-c", script],
        env=worker_env(),
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    run_ids = started.stdout.split()
    assert len(run_ids) == 3
    for run_id in run_ids:  # long before recover() would re-send a lost message
        assert wait_for_run(run_id, timeout=10).status == "succeeded"
