"""Every audited action, exercised through the real API (or service), is recorded once, with its
actor, workspace, target and changes, and without any secret value."""

import pytest
from django.db import transaction
from rest_framework.test import APIClient

from accounts.access import personal_workspace
from accounts.models import User
from audit.models import AuditEvent
from tests.audit.conftest import (
    CREDENTIAL_SECRET,
    HOOK_SECRET,
    PASSWORD,
    assert_no_secret_recorded,
    events,
    last_event,
)
from tests.conftest import client_for
from tests.factories import PASSWORD as FACTORY_PASSWORD
from tests.factories import UserFactory
from workflows.engine import execute
from workflows.models import Credential, Run, Schedule, WebhookTrigger, Workflow
from workflows.services.workflows import workflow_create

pytestmark = pytest.mark.django_db

Actor = AuditEvent.ActorType


def chain(*keys: str, name: str = "Chain") -> dict:
    return {"name": name, "nodes": [{"key": key, "type": "text", "content": f"{key} text"} for key in keys]}


def ok(answer, status: int = 200):
    assert answer.status_code == status, answer.content
    return answer.json() if answer.content else None


def test_auth_events_are_recorded_for_token_and_session_logins():
    api = APIClient(HTTP_USER_AGENT="audit-tests/1.0", REMOTE_ADDR="203.0.113.7")
    body = {"email": "ann@example.com", "password": PASSWORD, "name": "Ann"}
    user_id = ok(api.post("/api/v3/auth/register", body, format="json", HTTP_X_REQUEST_ID="req-register-1"), 201)["id"]
    registered = last_event("auth.registered")
    user = User.objects.get(pk=user_id)
    assert (registered.actor, registered.actor_type, registered.actor_label) == (user, Actor.USER, "ann@example.com")
    assert registered.workspace == personal_workspace(user)
    assert (registered.target_type, registered.target_id) == ("user", user_id)
    assert registered.changes == {"email": [None, "ann@example.com"], "name": [None, "Ann"], "password": [None, "***"]}
    assert (registered.ip, registered.user_agent, registered.request_id) == (
        "203.0.113.7",
        "audit-tests/1.0",
        "req-register-1",
    )

    wrong = {"email": "ann@example.com", "password": "not-" + PASSWORD}
    assert api.post("/api/v3/auth/token", wrong, format="json").status_code == 401
    failed = last_event("auth.login_failed")
    assert (failed.actor, failed.actor_type, failed.actor_label) == (None, Actor.ANONYMOUS, "ann@example.com")
    assert (failed.target_type, failed.target_id, failed.ip) == ("user", user_id, "203.0.113.7")

    tokens = ok(api.post("/api/v3/auth/token", {"email": "ann@example.com", "password": PASSWORD}, format="json"))
    login = last_event("auth.login")
    assert (login.actor, login.target_id, login.ip) == (user, user_id, "203.0.113.7")

    ok(api.post("/api/v3/auth/logout", {"refresh": tokens["refresh"]}, format="json"), 205)
    assert last_event("auth.logout").actor == user

    new_password = PASSWORD + "-v2"
    body = {"old_password": PASSWORD, "new_password": new_password}
    ok(client_for(user).post("/api/v3/auth/password", body, format="json"), 204)
    changed = last_event("auth.password_changed")
    assert changed.actor == user
    assert changed.changes["password"] == ["***", "***"]

    session = APIClient()
    assert session.login(email="ann@example.com", password=new_password)
    session.logout()
    assert [event.action for event in events(actor=user)][-2:] == ["auth.login", "auth.logout"]
    assert AuditEvent.objects.filter(action="auth.login_failed").count() == 1
    assert_no_secret_recorded(new_password, tokens["refresh"], tokens["access"])


def test_workspace_events_record_members_and_roles(owner, owner_api, team):
    newcomer = UserFactory(email="newcomer@example.com")
    created = ok(owner_api.post("/api/v3/workspaces", {"name": "Research"}, format="json"), 201)
    event = last_event("workspace.created")
    assert (event.actor, event.workspace_ref, event.target_id) == (owner, created["id"], created["id"])
    assert event.changes == {"name": [None, "Research"]}

    ok(owner_api.patch(f"/api/v3/workspaces/{created['id']}", {"name": "R&D"}, format="json"))
    assert last_event("workspace.updated").changes == {"name": ["Research", "R&D"]}

    members = f"/api/v3/workspaces/{team.pk}/members"
    ok(owner_api.post(members, {"email": newcomer.email, "role": "viewer"}, format="json"), 201)
    added = last_event("workspace.member_added")
    assert (added.workspace, added.target_type, added.target_id) == (team, "user", str(newcomer.pk))
    assert added.changes == {"email": [None, newcomer.email], "role": [None, "viewer"]}

    ok(owner_api.patch(f"{members}/{newcomer.pk}", {"role": "editor"}, format="json"))
    assert last_event("workspace.role_changed").changes == {"role": ["viewer", "editor"]}

    ok(owner_api.delete(f"{members}/{newcomer.pk}"), 204)
    removed = last_event("workspace.member_removed")
    assert (removed.actor, removed.workspace, removed.target_id) == (owner, team, str(newcomer.pk))
    assert removed.changes == {"email": [newcomer.email, None], "role": ["editor", None]}

    ok(owner_api.delete(f"/api/v3/workspaces/{created['id']}"), 204)
    deleted = last_event("workspace.deleted")
    assert (deleted.workspace, deleted.target_type, deleted.target_id) == (None, "workspace", created["id"])
    # The earlier events of the deleted workspace keep its id and name in their hashed text.
    earlier = last_event("workspace.updated")
    assert (earlier.workspace_id, earlier.workspace_ref, earlier.workspace_label) == (None, created["id"], "R&D")


def test_workflow_and_node_events(owner, owner_api, team):
    body = {**chain("outline", "draft"), "workspace": str(team.pk), "tags": ["blog"]}
    workflow = ok(owner_api.post("/api/v3/workflows", body, format="json"), 201)
    url = f"/api/v3/workflows/{workflow['id']}"
    created = last_event("workflow.created")
    assert (created.actor, created.workspace, created.target_type, created.target_id) == (
        owner,
        team,
        "workflow",
        workflow["id"],
    )
    assert created.changes["name"] == [None, "Chain"]
    assert created.changes["nodes"] == [None, ["outline", "draft"]]
    assert created.changes["tags"] == [None, ["blog"]]

    ok(owner_api.patch(url, {"name": "Blog chain", "status": "active"}, format="json"))
    assert last_event("workflow.updated").changes == {
        "name": ["Chain", "Blog chain"],
        "status": ["draft", "active"],
        "version": [1, 2],
    }

    node = ok(owner_api.post(f"{url}/nodes", {"key": "summary", "type": "text", "content": "s"}, format="json"), 201)
    node_created = last_event("node.created")
    assert (node_created.target_type, node_created.target_id, node_created.workspace) == ("node", node["id"], team)
    assert node_created.changes["key"] == [None, "summary"]
    assert node_created.changes["workflow"] == [None, workflow["id"]]

    ok(
        owner_api.patch(
            f"/api/v3/nodes/{node['id']}", {"title": "Summary", "position": {"x": 5, "y": 9}}, format="json"
        )
    )
    assert last_event("node.updated").changes == {"title": ["", "Summary"]}

    ok(owner_api.delete(f"/api/v3/nodes/{node['id']}"), 204)
    node_deleted = last_event("node.deleted")
    assert (node_deleted.target_id, node_deleted.changes["key"]) == (node["id"], ["summary", None])

    document = ok(owner_api.get(f"{url}/export"))
    exported = last_event("workflow.exported")
    assert (exported.actor, exported.target_id, exported.changes) == (owner, workflow["id"], {})

    imported = ok(owner_api.post(f"/api/v3/workflows/import?workspace={team.pk}", [document], format="json"), 201)
    assert last_event("workflow.imported").target_id == imported[0]["id"]
    assert not AuditEvent.objects.filter(action="workflow.created", target_id=imported[0]["id"]).exists()

    ok(owner_api.delete(url), 204)
    assert list(last_event("workflow.deleted").changes) == ["deleted_at"]
    ok(owner_api.post(f"{url}/restore"))
    restored = last_event("workflow.restored")
    assert restored.changes["deleted_at"][1] is None

    ok(
        owner_api.post(
            "/api/v3/workflows/bulk", {"action": "pause", "ids": [workflow["id"], imported[0]["id"]]}, format="json"
        )
    )
    paused = events(
        action="workflow.updated", target_id__in=[workflow["id"], imported[0]["id"]], changes__has_key="status"
    )
    assert {event.target_id: event.changes["status"] for event in paused[-2:]} == {
        workflow["id"]: ["active", "paused"],
        imported[0]["id"]: ["active", "paused"],
    }


def approval_run(owner, team, node_key: str = "ask") -> Run:
    workflow = workflow_create(
        actor=owner,
        workspace=team,
        data={"name": "Approve", "nodes": [{"key": node_key, "type": "approval", "config": {"message": "ok?"}}]},
    )
    run, _ = scheduler_free_trigger(workflow, owner)
    step = run.steps.get()
    execute.execute_step(step.pk, step.attempt)  # what a worker would do: the step starts waiting
    run.refresh_from_db()
    assert run.status == Run.Status.WAITING
    return run


def scheduler_free_trigger(workflow: Workflow, owner) -> tuple[Run, bool]:
    from workflows.services.runs import run_trigger

    return run_trigger(workflow=workflow, input={}, trigger=Run.Trigger.MANUAL, actor=owner)


def test_run_events(owner, owner_api, team):
    workflow = workflow_create(actor=owner, workspace=team, data=chain("a", "b"))
    run = ok(owner_api.post(f"/api/v3/workflows/{workflow.pk}/runs", {"input": {}}, format="json"), 202)
    triggered = last_event("run.triggered")
    assert (triggered.actor, triggered.workspace, triggered.target_type, triggered.target_id) == (
        owner,
        team,
        "run",
        run["id"],
    )
    assert triggered.changes == {"workflow": [None, str(workflow.pk)], "trigger": [None, "api"]}

    before = AuditEvent.objects.count()
    batch = ok(owner_api.post(f"/api/v3/workflows/{workflow.pk}/runs/batch", {"inputs": [{}] * 5}, format="json"), 202)
    assert len(batch) == 5
    assert AuditEvent.objects.count() == before + 1  # one event for the batch, not one per run
    batch_event = last_event("run.triggered")
    assert (batch_event.target_type, batch_event.target_id) == ("workflow", str(workflow.pk))
    assert batch_event.changes == {"count": [None, 5], "trigger": [None, "api"]}

    ok(owner_api.post(f"/api/v3/runs/{run['id']}/cancel"), 202)
    cancelled = last_event("run.cancelled")
    assert (cancelled.target_id, cancelled.changes["status"][1]) == (run["id"], "cancelled")

    ok(owner_api.post(f"/api/v3/runs/{run['id']}/retry"), 202)
    retried = last_event("run.retried")
    assert (retried.target_id, retried.changes["status"][0]) == (run["id"], "cancelled")

    approved = approval_run(owner, team)
    body = {"approved": True, "comment": "ship it"}
    ok(owner_api.post(f"/api/v3/runs/{approved.pk}/steps/ask/approve", body, format="json"))
    event = last_event("run.approved")
    assert (event.actor, event.target_id) == (owner, str(approved.pk))
    assert event.changes["step"] == [None, "ask"]
    assert event.changes["comment"] == [None, "ship it"]

    rejected = approval_run(owner, team)
    ok(owner_api.post(f"/api/v3/runs/{rejected.pk}/steps/ask/approve", {"approved": False}, format="json"))
    event = last_event("run.rejected")
    assert (event.target_id, event.changes["status"]) == (str(rejected.pk), ["waiting", "failed"])


def test_runs_the_system_starts_are_not_audited(owner, team):
    """A schedule, webhook or event trigger's run is its own record; only people and API clients are audited."""
    workflow = workflow_create(actor=owner, workspace=team, data={**chain("a"), "status": "active"})
    from workflows.services.runs import run_trigger

    before = AuditEvent.objects.filter(action="run.triggered").count()
    run_trigger(workflow=workflow, input={}, trigger=Run.Trigger.SCHEDULE, actor=None)
    assert AuditEvent.objects.filter(action="run.triggered").count() == before


def test_credential_events_never_hold_the_value(owner, owner_api, team):
    body = {"name": "openai-main", "kind": "openai", "value": {"api_key": CREDENTIAL_SECRET}, "workspace": str(team.pk)}
    credential = ok(owner_api.post("/api/v3/credentials", body, format="json"), 201)
    created = last_event("credential.created")
    assert (created.actor, created.workspace, created.target_type, created.target_id) == (
        owner,
        team,
        "credential",
        credential["id"],
    )
    assert created.changes == {"name": [None, "openai-main"], "kind": [None, "openai"], "value": [None, "***"]}

    patch = {"name": "openai-prod", "value": {"api_key": CREDENTIAL_SECRET + "-2"}}
    ok(owner_api.patch(f"/api/v3/credentials/{credential['id']}", patch, format="json"))
    assert last_event("credential.updated").changes == {"name": ["openai-main", "openai-prod"], "value": ["***", "***"]}

    ok(owner_api.delete(f"/api/v3/credentials/{credential['id']}"), 204)
    deleted = last_event("credential.deleted")
    assert (deleted.target_id, deleted.workspace) == (credential["id"], team)
    assert deleted.changes == {"name": ["openai-prod", None], "kind": ["openai", None], "value": ["***", None]}
    assert not Credential.objects.exists()
    assert_no_secret_recorded()


def test_schedule_events(owner, owner_api, team):
    workflow = workflow_create(actor=owner, workspace=team, data={**chain("a"), "status": "active"})
    body = {"cron": "0 9 * * 1", "timezone": "Europe/Berlin", "input": {"topic": "x"}}
    schedule = ok(owner_api.post(f"/api/v3/workflows/{workflow.pk}/schedules", body, format="json"), 201)
    created = last_event("schedule.created")
    assert (created.actor, created.workspace, created.target_type, created.target_id) == (
        owner,
        team,
        "schedule",
        schedule["id"],
    )
    assert created.changes["cron"] == [None, "0 9 * * 1"]
    assert created.changes["workflow"] == [None, str(workflow.pk)]

    ok(owner_api.patch(f"/api/v3/schedules/{schedule['id']}", {"cron": "0 10 * * 1", "enabled": False}, format="json"))
    assert last_event("schedule.updated").changes == {"cron": ["0 9 * * 1", "0 10 * * 1"], "enabled": [True, False]}

    ok(owner_api.delete(f"/api/v3/schedules/{schedule['id']}"), 204)
    deleted = last_event("schedule.deleted")
    assert (deleted.target_id, deleted.changes["cron"]) == (schedule["id"], ["0 10 * * 1", None])
    assert not Schedule.objects.exists()


def test_event_trigger_events(owner, owner_api, team):
    source = workflow_create(actor=owner, workspace=team, data=chain("a", name="Source"))
    target = workflow_create(actor=owner, workspace=team, data=chain("b", name="Target"))
    body = {"source_workflow": str(source.pk), "on": "failed"}
    trigger = ok(owner_api.post(f"/api/v3/workflows/{target.pk}/event-triggers", body, format="json"), 201)
    created = last_event("event_trigger.created")
    assert (created.actor, created.workspace, created.target_type, created.target_id) == (
        owner,
        team,
        "event_trigger",
        trigger["id"],
    )
    assert created.changes == {
        "source_workflow": [None, str(source.pk)],
        "on": [None, "failed"],
        "enabled": [None, True],
    }

    ok(owner_api.patch(f"/api/v3/event-triggers/{trigger['id']}", {"enabled": False}, format="json"))
    assert last_event("event_trigger.updated").changes == {"enabled": [True, False]}
    before = len(events())
    ok(owner_api.patch(f"/api/v3/event-triggers/{trigger['id']}", {"enabled": False}, format="json"))
    assert len(events()) == before  # nothing changed, nothing recorded

    ok(owner_api.delete(f"/api/v3/event-triggers/{trigger['id']}"), 204)
    deleted = last_event("event_trigger.deleted")
    assert (deleted.target_id, deleted.changes["on"]) == (trigger["id"], ["failed", None])


def test_webhook_events_never_hold_the_token_or_secret(owner, owner_api, team):
    workflow = workflow_create(actor=owner, workspace=team, data={**chain("a"), "status": "active"})
    hook = ok(owner_api.post(f"/api/v3/workflows/{workflow.pk}/webhooks", {"secret": HOOK_SECRET}, format="json"), 201)
    created = last_event("webhook.created")
    assert (created.actor, created.workspace, created.target_type, created.target_id) == (
        owner,
        team,
        "webhook",
        hook["id"],
    )
    assert created.changes == {"workflow": [None, str(workflow.pk)], "token": [None, "***"], "secret": [None, "***"]}

    rotated = ok(owner_api.post(f"/api/v3/webhooks/{hook['id']}/rotate"))
    assert last_event("webhook.rotated").changes == {"token": ["***", "***"]}

    ok(owner_api.delete(f"/api/v3/webhooks/{hook['id']}"), 204)
    deleted = last_event("webhook.deleted")
    assert (deleted.target_id, deleted.changes) == (hook["id"], {"workflow": [str(workflow.pk), None]})
    assert not WebhookTrigger.objects.exists()
    tokens = [value for value in (hook.get("token"), rotated.get("token")) if value]
    assert tokens  # the API shows each token once; neither may be in the trail
    assert_no_secret_recorded(*tokens)


def test_a_rolled_back_service_call_leaves_no_audit_row(owner, team):
    before = AuditEvent.objects.count()
    with pytest.raises(RuntimeError), transaction.atomic():
        workflow_create(actor=owner, workspace=team, data=chain("a"))
        assert AuditEvent.objects.count() == before + 1
        raise RuntimeError("the caller's transaction fails after the service returned")
    assert AuditEvent.objects.count() == before
    assert not Workflow.objects.filter(name="Chain").exists()


def test_changes_made_with_an_api_key_are_recorded_as_the_key(owner, team):
    from accounts.api_keys import api_key_create

    key, raw_key = api_key_create(user=owner, name="ci", scopes=["write"])
    api = APIClient(HTTP_X_API_KEY=raw_key)
    workflow = ok(api.post("/api/v3/workflows", {**chain("a"), "workspace": str(team.pk)}, format="json"), 201)
    event = last_event("workflow.created")
    assert (event.actor, event.actor_type, event.actor_label, event.api_key_id, event.target_id) == (
        owner,
        Actor.API_KEY,
        f"apikey:{key.prefix}",
        key.pk,
        workflow["id"],
    )
    assert_no_secret_recorded(raw_key)


def test_an_api_key_object_passed_as_the_actor_acts_for_its_user(owner, team):
    """Anything with a prefix, a pk and its user's id acts as a key (the model is accounts')."""
    from audit.services import audit_record

    class Key:
        pk = "0b7a9a36-5c2e-4a39-9d1c-2f3c1f0f7e11"
        prefix = "dwc_ab12"
        created_by_id = owner.pk

    event = audit_record(action="workflow.exported", actor=Key(), workspace=team)
    assert (event.actor_type, event.actor_label, str(event.api_key_id), event.actor) == (
        Actor.API_KEY,
        "apikey:dwc_ab12",
        Key.pk,
        owner,
    )


def test_session_login_through_the_admin_login_form_is_recorded(client):
    user = UserFactory(is_staff=True)
    answer = client.post("/admin/login/", {"username": user.email, "password": FACTORY_PASSWORD})
    assert answer.status_code == 302
    login = last_event("auth.login")
    assert (login.actor, login.ip, len(login.request_id)) == (user, "127.0.0.1", 32)
