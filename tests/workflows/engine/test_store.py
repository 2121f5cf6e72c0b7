"""The engine's store: rows written and read back as the ORM writes and reads them, for whatever values."""

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.factories import UserFactory
from workflows.engine import store
from workflows.engine.transition import transition
from workflows.models import EventTrigger, Run, RunEvent, StepRun
from workflows.services.runs import run_trigger
from workflows.services.workflows import workflow_create

pytestmark = pytest.mark.django_db


def started_run(steps: int = 2):
    """A run of a `steps`-node workflow, created as run_trigger creates it (no worker here)."""
    user = UserFactory()
    workspace = user.memberships.get().workspace
    nodes = [{"key": f"n{index}", "type": "transform", "config": {"values": {}}} for index in range(steps)]
    workflow = workflow_create(actor=user, workspace=workspace, data={"name": "Stored", "nodes": nodes})
    run, _ = run_trigger(workflow=workflow, input={"topic": "ünïcode"}, trigger="api", actor=user)
    return run


@pytest.mark.parametrize("count", [1, 3])
def test_inserted_rows_read_back_as_the_orm_would_have_written_them(count):
    run = started_run()
    created = timezone.now()
    events = [
        RunEvent(run=run, seq=100 + index, type="step.delta", data={"text": f"chunk {index}", "n": [index]})
        for index in range(count)
    ]
    store.insert_rows((RunEvent, events))

    stored = list(RunEvent.objects.filter(run=run, seq__gte=100).order_by("seq"))
    assert [(event.seq, event.type, event.step, event.data) for event in stored] == [
        (100 + index, "step.delta", "", {"text": f"chunk {index}", "n": [index]}) for index in range(count)
    ]
    # auto_now_add is honoured, as bulk_create honours it.
    assert all(event.created_at >= created for event in stored)


@pytest.mark.parametrize("steps", [1, 3])
def test_rows_inserted_together_may_refer_to_each_other_and_read_back_as_the_orms(steps):
    model_run = started_run()
    run = Run(workspace_id=model_run.workspace_id, workflow_id=model_run.workflow_id, version_id=model_run.version_id)
    run.input, run.event_seq = {"n": [1, "ü"]}, 1
    new_steps = [StepRun(run=run, node_key=f"k{index}", node_type="transform") for index in range(steps)]
    event = RunEvent(run=run, seq=1, type="run.created", data={"x": 1}, created_at=timezone.now())

    with transaction.atomic():  # the steps and the event name a run inserted in the same statement
        store.insert_rows((RunEvent, [event]), (StepRun, new_steps), (Run, [run]), (StepRun, []))

    stored = Run.objects.get(pk=run.pk)
    assert (stored.input, stored.status, stored.event_seq) == ({"n": [1, "ü"]}, "pending", 1)
    assert sorted(stored.steps.values_list("node_key", flat=True)) == [f"k{index}" for index in range(steps)]
    assert list(stored.events.values_list("seq", "type", "data")) == [(1, "run.created", {"x": 1})]


def test_rows_inserted_together_are_all_or_nothing():
    run = started_run()
    event = RunEvent(run=run, seq=999, type="run.note", data={}, created_at=timezone.now())
    twin = StepRun(run=run, node_key="n0", node_type="transform")  # the run has a step n0 already
    with pytest.raises(IntegrityError), transaction.atomic():
        store.insert_rows((RunEvent, [event]), (StepRun, [twin]))
    assert not RunEvent.objects.filter(seq=999).exists()
    assert run.steps.count() == 2


def test_fields_updated_for_many_instances_at_once_read_back_as_the_orms():
    runs = [started_run() for _ in range(3)]
    finished = timezone.now()
    for index, run in enumerate(runs):
        run.status, run.finished_at, run.output = "succeeded", finished, {"n": [index, "ü"]} if index else None
        run.workspace_id = None  # changed in memory only
    runs[2].error = {"message": "a field of this one only"}

    with CaptureQueriesContext(connection) as queries:
        store.update_rows([(run, {"status", "finished_at", "output"}) for run in runs[:2]] + [(runs[2], {"error"})])

    assert len(queries) == 2  # the two with the same fields share one statement
    stored = {run.pk: run for run in Run.objects.filter(pk__in=[run.pk for run in runs])}
    assert [(stored[run.pk].status, stored[run.pk].output) for run in runs[:2]] == [
        ("succeeded", None),
        ("succeeded", {"n": [1, "ü"]}),
    ]
    assert stored[runs[0].pk].finished_at == finished
    assert (stored[runs[2].pk].status, stored[runs[2].pk].error) == ("running", {"message": "a field of this one only"})
    assert all(stored[run.pk].workspace_id is not None for run in runs)


@pytest.mark.parametrize("count", [1, 2])
def test_updating_a_missing_row_is_an_error(count):
    runs = [started_run() for _ in range(count)]
    Run.objects.filter(pk=runs[-1].pk).delete()
    with pytest.raises(DatabaseError, match=f"1 of {count} Run rows did not update"), transaction.atomic():
        store.update_rows([(run, {"status"}) for run in runs])


def test_the_run_lock_reads_the_run_as_the_orm_does_and_says_whether_triggers_follow_it():
    run = started_run()
    with transaction.atomic():
        locked = store.run_lock(run.pk)
    expected = Run.objects.get(pk=run.pk)
    assert [getattr(locked, field.attname) for field in Run._meta.concrete_fields] == [
        getattr(expected, field.attname) for field in Run._meta.concrete_fields
    ]
    assert locked.input == {"topic": "ünïcode"} and locked.followed is False

    EventTrigger.objects.create(workflow=run.workflow, source_workflow=run.workflow)
    with transaction.atomic():
        assert store.run_lock(str(run.pk)).followed is True
        assert store.run_lock("not an id") is None


def test_a_runs_steps_read_back_as_the_orms():
    run = started_run(steps=3)
    assert sorted(store.run_steps(run.pk), key=lambda step: step.node_key) == list(
        StepRun.objects.filter(run=run).order_by("node_key")
    )


def test_a_transition_refuses_a_second_instance_of_a_run_it_holds():
    run = started_run()
    with pytest.raises(RuntimeError, match="Another instance"), transition() as tx:
        locked = tx.lock(run.pk)
        assert tx.lock(str(run.pk)) is locked
        tx.emit(Run.objects.get(pk=run.pk), "run.noted")


def test_every_unfinished_status_is_in_the_partial_indexes_the_recovery_scans_use():
    # A status added without them would still be found, by a scan of the whole table every 15 s.
    def statuses(model, name: str) -> set[str]:
        [index] = [index for index in model._meta.indexes if index.name == name]
        return set(dict(index.condition.children)["status__in"])

    assert statuses(Run, "run_active_idx") == set(Run.Status) - set(Run.FINISHED)
    # A pending step waits for its parents, which the engine finds through the run.
    assert statuses(StepRun, "step_active_idx") == set(StepRun.Status) - set(StepRun.FINISHED) - {"pending"}
