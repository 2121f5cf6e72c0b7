"""What a transition costs the database and the broadcast: its writes in one statement, a batch's runs
locked in one query, and its events published once it committed, each transaction's at once."""

from unittest.mock import patch

import pytest
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext

from tests.factories import UserFactory
from workflows import events
from workflows.engine import dispatch, execute, snapshot, store
from workflows.engine.transition import transition
from workflows.models import Run, RunEvent, StepRun
from workflows.services.runs import run_trigger, runs_trigger_many
from workflows.services.workflows import workflow_create

pytestmark = pytest.mark.django_db


def a_workflow(nodes: int = 1):
    user = UserFactory()
    workspace = user.memberships.get().workspace
    body = [{"key": f"n{index}", "type": "transform", "config": {"values": {"i": index}}} for index in range(nodes)]
    return user, workflow_create(actor=user, workspace=workspace, data={"name": "Writes", "nodes": body})


def queued_runs(count: int, nodes: int = 1) -> list[Run]:
    """Started runs whose steps no worker runs (their messages are not sent)."""
    user, workflow = a_workflow(nodes)
    with patch.object(dispatch, "send"):
        return runs_trigger_many(workflow=workflow, inputs=[{}] * count, trigger="api", actor=user)


def test_a_transitions_changes_to_steps_runs_and_events_are_written_in_one_statement():
    runs = queued_runs(2, nodes=2)
    with transition() as tx:
        for run in runs:
            locked = tx.lock(run.pk)
            for step in tx.steps(locked).values():
                step.worker = "w"
                tx.save_step(locked, step, "worker")
            locked.error = {"n": 1}
            tx.save(locked, "error")
            tx.emit(locked, "run.noted")
        with CaptureQueriesContext(connection) as writes:
            tx.flush()

    assert len(writes) == 1
    assert set(StepRun.objects.filter(run__in=runs).values_list("worker", flat=True)) == {"w"}
    assert [stored.error for stored in Run.objects.filter(pk__in=[run.pk for run in runs])] == [{"n": 1}] * 2
    assert RunEvent.objects.filter(run__in=runs, type="run.noted").count() == 2


def test_values_written_together_read_back_as_the_orm_wrote_them():
    [run] = queued_runs(1)
    with transition() as tx:
        locked = tx.lock(run.pk)
        step = tx.steps(locked)["n0"]
        step.output, step.error, step.duration_ms = {"text": "ü", "list": [1, None]}, None, 1.5
        tx.save_step(locked, step, "output", "error", "duration_ms")
        locked.output = "a string is JSON too"
        tx.save(locked, "output")

    stored = StepRun.objects.get(pk=step.pk)
    assert (stored.output, stored.error, stored.duration_ms) == ({"text": "ü", "list": [1, None]}, None, 1.5)
    assert StepRun.objects.filter(pk=step.pk, error__isnull=True).exists()  # SQL NULL, as save() writes None
    assert Run.objects.get(pk=run.pk).output == "a string is JSON too"


def test_a_write_that_misses_a_row_is_an_error_and_writes_nothing():
    runs = queued_runs(2)
    Run.objects.filter(pk=runs[1].pk).delete()
    for run in runs:
        run.error = {"gone": True}
    with pytest.raises(DatabaseError, match="1 of 2 Run rows did not update"), transaction.atomic():
        store.write([(run, {"error"}) for run in runs])
    assert Run.objects.get(pk=runs[0].pk).error is None


@pytest.mark.django_db(transaction=True)
def test_a_write_without_flush_wait_lets_only_its_own_transaction_commit_without_waiting():
    def setting() -> str:
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            return cursor.fetchone()[0]

    [run] = queued_runs(1)
    with transaction.atomic():
        run.error = {"n": 1}
        store.write([(run, {"error"})], flush_wait=False)
        assert setting() == "off"
    assert setting() == "on"


def test_a_batch_locks_its_runs_in_one_query_and_reads_their_steps_in_another():
    runs = queued_runs(3)
    steps = [(str(step.pk), step.attempt, str(step.run_id)) for step in StepRun.objects.filter(run__in=runs)]
    snapshot.version(runs[0].version_id)  # read once per process, not per batch

    with CaptureQueriesContext(connection) as queries:
        execute.execute_cheap_steps(steps, worker="w")

    statements = [query["sql"] for query in queries if not query["sql"].startswith(("SAVEPOINT", "RELEASE"))]
    assert [sql.split()[0] for sql in statements] == ["SELECT", "SELECT", "WITH"]
    assert "FOR NO KEY UPDATE SKIP LOCKED" in statements[0]
    assert set(Run.objects.filter(pk__in=[run.pk for run in runs]).values_list("status", flat=True)) == {"succeeded"}


@pytest.mark.django_db(transaction=True)
def test_each_transactions_events_are_published_at_once_when_it_commits_in_order():
    """Not gathered across transactions: waiting 10 ms for company made a hundred dashboard clients'
    events arrive 0.7 s late at p95 (bench/realtime_latency.py)."""
    user, workflow = a_workflow()
    published = []
    with patch.object(dispatch, "send"), patch.object(events, "publish", published.append):
        for count in range(1, 6):
            run, _ = run_trigger(workflow=workflow, input={}, trigger="api", actor=user)
            assert len(published) == count  # published by the commit, before run_trigger returned
            assert [(event["run"], event["seq"]) for event in published[-1]] == [
                (str(run.pk), seq) for seq in (1, 2, 3)
            ]
