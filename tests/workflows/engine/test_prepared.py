"""Statements the engine builds once per process: the same rows as the ORM's, for whatever values."""

import pytest
from django.db import DatabaseError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Membership, Workspace
from tests.factories import UserFactory, WorkspaceFactory
from workflows.engine.prepared import PreparedQuery, insert_rows, save_fields
from workflows.engine.scheduler import locked_run
from workflows.models import Run, RunEvent, StepRun
from workflows.services.definitions import workflow_create
from workflows.services.runs import run_trigger

pytestmark = pytest.mark.django_db


def test_a_prepared_query_returns_what_the_orm_returns_for_each_value():
    first, second = WorkspaceFactory(name="First"), WorkspaceFactory(name="Second")
    for user in (UserFactory(), UserFactory()):
        Membership.objects.create(workspace=first, user=user, role=Membership.Role.EDITOR)
    members = PreparedQuery(lambda workspace_id: Membership.objects.filter(workspace_id=workspace_id).order_by("pk"))

    for workspace in (first, second, first):
        expected = list(Membership.objects.filter(workspace=workspace).order_by("pk"))
        assert list(members(workspace.pk)) == expected
        assert list(members(str(workspace.pk))) == expected  # ids as text too, as Celery messages carry them
    assert [member.role for member in members(first.pk)] == ["editor", "editor"]


def test_a_query_must_use_its_value_exactly_once():
    twice = PreparedQuery(lambda value: Workspace.objects.filter(Q(pk=value) | Q(created_by_id=value)))
    with pytest.raises(ValueError, match="exactly once, not 2 times"):
        twice(WorkspaceFactory().pk)


def started_run(steps: int = 2):
    """A run of a `steps`-node workflow, created as run_trigger creates it (no worker here)."""
    user = UserFactory()
    workspace = user.memberships.get().workspace
    nodes = [{"key": f"n{index}", "type": "transform", "config": {"values": {}}} for index in range(steps)]
    workflow = workflow_create(actor=user, workspace=workspace, data={"name": "Prepared", "nodes": nodes})
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
    insert_rows(RunEvent, events)

    stored = list(RunEvent.objects.filter(run=run, seq__gte=100).order_by("seq"))
    assert [(event.seq, event.type, event.step, event.data) for event in stored] == [
        (100 + index, "step.delta", "", {"text": f"chunk {index}", "n": [index]}) for index in range(count)
    ]
    # auto_now_add is honoured, as bulk_create honours it.
    assert all(event.created_at >= created for event in stored)


def test_saved_fields_change_those_fields_only_and_a_missing_row_is_an_error():
    run = started_run()
    step = run.steps.get(node_key="n0")
    step.output, step.worker, step.node_type = {"a": {"b": [1, 2]}}, "w1", "changed in memory only"
    save_fields(step, ["output", "worker"])

    stored = StepRun.objects.get(pk=step.pk)
    assert (stored.output, stored.worker, stored.node_type) == ({"a": {"b": [1, 2]}}, "w1", "transform")

    StepRun.objects.filter(pk=step.pk).delete()
    with pytest.raises(DatabaseError, match="did not update one row"):
        save_fields(step, ["worker"])


def test_the_run_lock_query_reads_json_and_annotations_as_the_orm_does():
    run = started_run()
    with transaction.atomic():
        locked = locked_run(run.pk)
    assert locked.input == {"topic": "ünïcode"}
    assert locked.followed is False
    assert (locked.workflow_id, locked.status, locked.event_seq) == (run.workflow_id, run.status, run.event_seq)


def test_every_unfinished_status_is_in_the_partial_indexes_the_recovery_scans_use():
    # A status added without them would still be found, by a scan of the whole table every 15 s.
    def statuses(model, name: str) -> set[str]:
        [index] = [index for index in model._meta.indexes if index.name == name]
        return set(dict(index.condition.children)["status__in"])

    assert statuses(Run, "run_active_idx") == set(Run.Status) - set(Run.FINISHED)
    # A pending step waits for its parents, which the scheduler finds through the run.
    assert statuses(StepRun, "step_active_idx") == set(StepRun.Status) - set(StepRun.FINISHED) - {"pending"}
