"""Cheap steps travel in batches: a burst of runs costs a few broker messages, and none is left behind."""

import threading

import pytest
from celery.signals import before_task_publish

from tests.factories import UserFactory
from tests.workflows.engine.conftest import wait_for_run
from workflows.engine import dispatch
from workflows.models import Run, RunEvent, StepRun
from workflows.services.definitions import workflow_create
from workflows.services.runs import run_trigger, runs_trigger_many

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
