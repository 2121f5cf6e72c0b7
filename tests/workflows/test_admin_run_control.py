"""Operators pause and resume runs and drain the engine from the Django admin, through the same
services as the API (audited); staff without the permission only read the engine's page."""

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from accounts.access import personal_workspace
from accounts.models import User
from audit.models import AuditEvent
from tests.factories import UserFactory
from workflows.engine import execute
from workflows.models import EngineDrain, Run
from workflows.services.runs import run_trigger
from workflows.services.workflows import workflow_create

pytestmark = pytest.mark.django_db

ENGINE = "/admin/workflows/enginedrain/"
RUNS = "/admin/workflows/run/"


@pytest.fixture
def root(db) -> User:
    return User.objects.create_superuser(email="root@example.com", password="x-Long-enough-1")


@pytest.fixture
def operator(root) -> Client:
    client = Client()
    client.force_login(root)
    return client


def waiting_run(owner: User) -> Run:
    workflow = workflow_create(
        actor=owner,
        workspace=personal_workspace(owner),
        data={"name": "Waits", "nodes": [{"key": "wait", "type": "delay", "config": {"seconds": 600}}]},
    )
    run, _ = run_trigger(workflow=workflow, input={}, trigger="api", actor=owner)
    step = run.steps.get()
    execute.execute_step(step.pk, step.attempt)  # what a worker does: the delay waits
    run.refresh_from_db()
    assert run.status == Run.Status.WAITING
    return run


def test_the_run_admin_pauses_and_resumes_selected_runs(operator, root):
    run = waiting_run(UserFactory())
    answer = operator.post(RUNS, {"action": "pause", "_selected_action": [str(run.pk)]}, follow=True)
    assert "Paused 1 run(s)." in answer.content.decode()
    run.refresh_from_db()
    assert (run.status, run.pause_scope) == ("paused", "run")
    answer = operator.post(RUNS, {"action": "pause_now", "_selected_action": [str(run.pk)]}, follow=True)
    assert "The run is paused already." in answer.content.decode()

    operator.post(RUNS, {"action": "resume", "_selected_action": [str(run.pk)]})
    run.refresh_from_db()
    assert run.status == "waiting"
    actions = list(AuditEvent.objects.filter(target_id=str(run.pk)).values_list("action", "actor_id"))
    assert ("run.paused", root.pk) in actions and ("run.resumed", root.pk) in actions


def test_the_engine_page_drains_and_resumes(operator):
    page = operator.get(ENGINE).content.decode()
    assert "Running." in page and "Drain the engine" in page

    answer = operator.post(ENGINE, {"operation": "drain", "reason": "release 3.1"}, follow=True)
    page = answer.content.decode()
    assert "Draining" in page and "release 3.1" in page and "End the drain" in page
    assert EngineDrain.objects.get().reason == "release 3.1"
    answer = operator.post(ENGINE, {"operation": "drain"}, follow=True)
    assert "The engine is draining already." in answer.content.decode()

    operator.post(ENGINE, {"operation": "resume"})
    assert not EngineDrain.objects.exists()
    assert sorted(AuditEvent.objects.filter(action__startswith="engine.").values_list("action", flat=True)) == [
        "engine.drained",
        "engine.resumed",
    ]


def test_staff_who_may_only_view_see_the_engine_and_cannot_drain_it():
    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_enginedrain"))
    client = Client()
    client.force_login(viewer)
    page = client.get(ENGINE).content.decode()
    assert "Running." in page and "Drain the engine" not in page
    assert client.post(ENGINE, {"operation": "drain"}).status_code == 403
    assert not EngineDrain.objects.exists()

    stranger = Client()
    stranger.force_login(UserFactory(is_staff=True))
    assert stranger.get(ENGINE).status_code == 403
