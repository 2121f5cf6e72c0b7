"""Starting a run: the role checked once, in Python, then one transaction that writes the run, its
steps and first events and appends the audit event — all of them or none."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DatabaseError, connection, transaction
from django.http import Http404
from django.test.utils import CaptureQueriesContext

from accounts.models import Membership
from audit.chain import chain_verify
from audit.models import AuditChainHead, AuditEvent
from core.problems import Conflict
from tests.factories import MembershipFactory, UserFactory
from workflows.models import Run, RunEvent, StepRun, Workflow
from workflows.services import runs
from workflows.services.runs import run_trigger
from workflows.services.workflows import workflow_create

pytestmark = pytest.mark.django_db
# Outside a transaction, as a request or a worker calls it, the run commits by itself.
outside_a_transaction = pytest.mark.django_db(transaction=True)

SCHEMA = {"type": "object", "properties": {"topic": {"type": "string"}}, "required": ["topic"]}


@pytest.fixture
def owner():
    return UserFactory()


@pytest.fixture
def workflow(owner):
    nodes = [{"key": f"n{index}", "type": "transform", "config": {"values": {}}} for index in range(2)]
    data = {"name": "Started", "nodes": nodes, "input_schema": SCHEMA}
    return workflow_create(actor=owner, workspace=owner.memberships.get().workspace, data=data)


def member(workflow: Workflow, role: str):
    return MembershipFactory(workspace=workflow.workspace, role=role).user


def started_once(workflow: Workflow, actor) -> None:
    """A run started once, so that this process has read the workflow's version (cached after)."""
    run_trigger(workflow=workflow, input={"topic": "warm"}, trigger="api", actor=actor)


def written() -> tuple[int, int, int, int]:
    return Run.objects.count(), StepRun.objects.count(), RunEvent.objects.count(), AuditEvent.objects.count()


@outside_a_transaction
def test_an_editor_starts_a_run_in_one_transaction_that_writes_everything_and_audits_it(workflow, owner):
    editor = member(workflow, Membership.Role.EDITOR)
    started_once(workflow, owner)

    with CaptureQueriesContext(connection) as queries:
        run, created = run_trigger(workflow=workflow, input={"topic": "x"}, trigger="api", actor=editor)

    # The role is checked once, in Python, before the transaction.
    assert created and sum(Membership._meta.db_table in query["sql"] for query in queries) == 1
    stored = Run.objects.get(pk=run.pk)
    assert (stored.input, stored.created_by_id, stored.steps.count()) == ({"topic": "x"}, editor.pk, 2)
    # What the transaction wrote; a worker of this package, if one runs, may have gone on since.
    assert list(stored.events.filter(seq__lte=3).order_by("seq").values_list("type", flat=True)) == [
        "run.created",
        "run.started",
        "step.queued",
    ]
    event = AuditEvent.objects.order_by("-id").first()
    assert (event.action, event.actor_id, event.target_id) == ("run.triggered", editor.pk, str(run.pk))
    assert chain_verify().ok


def test_a_run_whose_audit_record_fails_is_not_started(workflow, owner, monkeypatch):
    def broken(**_record):
        raise DatabaseError("the audit trail is unavailable")

    monkeypatch.setattr(runs, "audit_record", broken)
    before = written()
    with pytest.raises(DatabaseError):
        run_trigger(workflow=workflow, input={"topic": "x"}, trigger="api", actor=owner)
    assert written() == before


@outside_a_transaction
def test_a_run_the_system_starts_is_not_audited(workflow, owner):
    workflow.status = Workflow.Status.ACTIVE
    workflow.save(update_fields=["status"])
    started_once(workflow, owner)
    audited = AuditEvent.objects.count()

    run, _ = run_trigger(workflow=workflow, input={"topic": "x"}, trigger="webhook", actor=None)

    assert Run.objects.get(pk=run.pk).trigger == "webhook"
    assert AuditEvent.objects.count() == audited


@pytest.mark.parametrize("role", [Membership.Role.VIEWER, None])
def test_who_may_not_start_runs_is_refused_and_nothing_is_written(workflow, role):
    person = member(workflow, role) if role else UserFactory()
    head = AuditChainHead.objects.get(pk=1)
    before = written()

    with pytest.raises(PermissionDenied if role else Http404):
        run_trigger(workflow=workflow, input={"topic": "x"}, trigger="api", actor=person)

    assert written() == before
    assert AuditChainHead.objects.get(pk=1).last_hash == head.last_hash


def test_a_stranger_learns_nothing_of_the_workflow_from_bad_input_or_its_status(workflow):
    stranger = UserFactory()
    with pytest.raises(Http404):
        run_trigger(workflow=workflow, input={"wrong": 1}, trigger="api", actor=stranger)
    workflow.status = Workflow.Status.PAUSED
    workflow.save(update_fields=["status"])
    with pytest.raises(Http404):
        run_trigger(workflow=workflow, input={"topic": "x"}, trigger="api", actor=stranger)
    # A member is told what is wrong.
    with pytest.raises(Conflict):
        run_trigger(workflow=workflow, input={"topic": "x"}, trigger="api", actor=member(workflow, "editor"))
    workflow.status = Workflow.Status.ACTIVE
    workflow.save(update_fields=["status"])
    with pytest.raises(ValidationError):
        run_trigger(workflow=workflow, input={"wrong": 1}, trigger="api", actor=member(workflow, "editor"))


def test_the_first_audited_run_of_a_new_database_makes_the_chain_head(workflow, owner):
    AuditChainHead.objects.all().delete()  # as on a database that has never audited anything

    run, created = run_trigger(workflow=workflow, input={"topic": "x"}, trigger="api", actor=owner)

    assert created and Run.objects.filter(pk=run.pk).exists()
    assert AuditEvent.objects.filter(action="run.triggered", target_id=str(run.pk)).count() == 1
    assert AuditChainHead.objects.get(pk=1).last_id == AuditEvent.objects.order_by("-id").first().id
    assert chain_verify().ok


def test_a_superuser_outside_the_workspace_starts_runs(workflow, owner):
    operator = UserFactory(is_superuser=True, is_staff=True)
    run, _ = run_trigger(workflow=workflow, input={"topic": "x"}, trigger="api", actor=operator)
    assert AuditEvent.objects.filter(action="run.triggered", actor_id=operator.pk, target_id=str(run.pk)).exists()


def test_inside_a_transaction_the_run_is_written_with_it_and_rolled_back_with_it(workflow, owner):
    before = written()
    with transaction.atomic():
        run, _ = run_trigger(workflow=workflow, input={"topic": "x"}, trigger="api", actor=owner)
        assert Run.objects.filter(pk=run.pk).exists()
        transaction.set_rollback(True)
    assert written() == before


def test_a_repeated_idempotency_key_returns_the_first_run_without_writing(workflow, owner):
    first, created = run_trigger(
        workflow=workflow, input={"topic": "x"}, trigger="api", actor=owner, idempotency_key="k"
    )
    before = written()

    again, created_again = run_trigger(
        workflow=workflow, input={"topic": "x"}, trigger="api", actor=owner, idempotency_key="k"
    )

    assert (created, created_again, again.pk) == (True, False, first.pk)
    assert written() == before
