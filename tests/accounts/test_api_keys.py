"""API keys: shown once, stored as a hash, acting as their creator within their scopes and workspace."""

import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.access import KEY_LIMITED_TO_WORKSPACE, KEY_NEEDS_ADMIN_SCOPE
from accounts.api.permissions import KEYS_REFUSED, SCOPE_MISSING
from accounts.api_keys import EXPIRY_IN_THE_PAST, INVALID_KEY, NO_SUCH_WORKSPACE, REVOKED_KEY
from accounts.models import ApiKey, Membership, Workspace
from audit.models import AuditEvent
from tests.conftest import client_for
from tests.factories import MembershipFactory, UserFactory, WorkspaceFactory
from tests.workflows.helpers import chain_body, create
from workflows.models import Run, Workflow

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"
LISTED_FIELDS = {
    "id",
    "name",
    "prefix",
    "scopes",
    "workspace",
    "allowed_ips",
    "created_at",
    "last_used_at",
    "expires_at",
    "revoked_at",
}


def new_key(api: APIClient, **fields) -> dict:
    answer = api.post("/api/v3/auth/api-keys", {"name": "ci", "scopes": ["read"], **fields}, format="json")
    assert answer.status_code == 201, answer.content
    return answer.json()


def with_key(raw_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=raw_key)
    return client


def personal(user) -> Workspace:
    return Membership.objects.get(user=user, workspace__is_personal=True).workspace


def test_the_key_is_shown_once_and_stored_only_as_its_hash(user, user_api):
    created = new_key(user_api, name="deploy bot", scopes=["read", "trigger"])
    assert set(created) == {"id", "name", "prefix", "key", "allowed_ips"}
    assert created["prefix"].startswith("dwc_") and len(created["prefix"]) == 12
    assert created["key"].startswith(created["prefix"] + "_") and len(created["key"]) > 50

    stored = ApiKey.objects.get(pk=created["id"])
    assert stored.key_hash == hashlib.sha256(created["key"].encode()).hexdigest()
    assert created["key"] not in {stored.prefix, stored.key_hash, stored.name}
    assert stored.scopes == ["read", "trigger"] and stored.user == user

    listed = user_api.get("/api/v3/auth/api-keys").json()
    assert listed["count"] == 1
    assert set(listed["results"][0]) == LISTED_FIELDS
    assert created["key"] not in str(listed)


def test_the_list_holds_only_the_callers_keys(user_api):
    new_key(user_api, name="mine")
    new_key(client_for(UserFactory()), name="theirs")
    names = [key["name"] for key in user_api.get("/api/v3/auth/api-keys").json()["results"]]
    assert names == ["mine"]


def test_a_key_acts_as_its_creator(user, user_api):
    raw_key = new_key(user_api)["key"]
    me = with_key(raw_key).get("/api/v3/auth/me")
    assert me.status_code == 200
    assert me.json()["email"] == user.email


def test_a_read_key_reads_but_changes_nothing(user_api):
    workflow = create(user_api, chain_body("a"))
    reader = with_key(new_key(user_api, scopes=["read"])["key"])
    assert reader.get(f"/api/v3/workflows/{workflow['id']}").status_code == 200

    count = Workflow.objects.count()
    refused = reader.post("/api/v3/workflows", chain_body("b"), format="json")
    assert refused.status_code == 403
    assert refused["Content-Type"] == PROBLEM
    assert refused.json()["detail"] == SCOPE_MISSING.format(scope="write")
    assert reader.patch(f"/api/v3/workflows/{workflow['id']}", {"name": "x"}, format="json").status_code == 403
    assert Workflow.objects.count() == count
    assert Workflow.objects.get(pk=workflow["id"]).name == "Chain"


def test_a_write_key_edits_definitions_but_does_not_start_runs(user_api):
    writer = with_key(new_key(user_api, scopes=["write"])["key"])
    workflow = create(writer, chain_body("a"))
    renamed = writer.patch(f"/api/v3/workflows/{workflow['id']}", {"name": "Renamed"}, format="json")
    assert renamed.status_code == 200

    started = writer.post(f"/api/v3/workflows/{workflow['id']}/runs", {"input": {}}, format="json")
    assert started.status_code == 403
    assert started.json()["detail"] == SCOPE_MISSING.format(scope="trigger")
    assert not Run.objects.exists()


def test_a_trigger_key_starts_runs_and_nothing_else(user_api):
    workflow = create(user_api, chain_body("a"))
    trigger = with_key(new_key(user_api, scopes=["trigger"])["key"])

    assert trigger.post(f"/api/v3/workflows/{workflow['id']}/runs", {"input": {}}, format="json").status_code == 202
    assert trigger.post("/api/v3/trigger", {"workflow_id": workflow["id"]}, format="json").status_code == 202
    batch = trigger.post(f"/api/v3/workflows/{workflow['id']}/runs/batch", {"inputs": [{}, {}]}, format="json")
    assert batch.status_code == 202
    assert Run.objects.filter(workflow_id=workflow["id"], trigger=Run.Trigger.API).count() == 4

    assert trigger.get(f"/api/v3/workflows/{workflow['id']}").status_code == 403
    assert trigger.patch(f"/api/v3/workflows/{workflow['id']}", {"name": "x"}, format="json").status_code == 403


def test_admin_operations_need_the_admin_scope(user, user_api):
    workspace = personal(user)
    writer = with_key(new_key(user_api, scopes=["write"])["key"])
    refused = writer.patch(f"/api/v3/workspaces/{workspace.id}", {"name": "Renamed"}, format="json")
    assert refused.status_code == 403
    assert refused.json()["detail"] == KEY_NEEDS_ADMIN_SCOPE
    workspace.refresh_from_db()
    assert workspace.name != "Renamed"

    admin = with_key(new_key(user_api, scopes=["admin"])["key"])
    assert admin.patch(f"/api/v3/workspaces/{workspace.id}", {"name": "Renamed"}, format="json").status_code == 200
    assert admin.get(f"/api/v3/workspaces/{workspace.id}").status_code == 200  # admin includes read


def test_the_admin_scope_does_not_raise_the_users_role(user_api):
    shared = WorkspaceFactory()
    MembershipFactory(workspace=shared, user=UserFactory(), role=Membership.Role.OWNER)
    viewer = UserFactory()
    MembershipFactory(workspace=shared, user=viewer, role=Membership.Role.VIEWER)
    admin = with_key(new_key(client_for(viewer), scopes=["admin"])["key"])
    assert admin.patch(f"/api/v3/workspaces/{shared.id}", {"name": "Mine now"}, format="json").status_code == 403


def test_a_key_limited_to_a_workspace_sees_no_other(user, user_api):
    home = personal(user)
    other = WorkspaceFactory()
    MembershipFactory(workspace=other, user=user, role=Membership.Role.OWNER)
    in_other = create(user_api, {**chain_body("a"), "workspace": str(other.id)})
    limited = with_key(new_key(user_api, scopes=["write"], workspace=str(home.id))["key"])

    assert [w["id"] for w in limited.get("/api/v3/workspaces").json()["results"]] == [str(home.id)]
    assert [w["id"] for w in limited.get("/api/v3/auth/me").json()["workspaces"]] == [str(home.id)]
    assert limited.get(f"/api/v3/workspaces/{other.id}").status_code == 404
    assert limited.get(f"/api/v3/workflows/{in_other['id']}").status_code == 404
    assert limited.get("/api/v3/workflows").json()["count"] == 0
    assert limited.patch(f"/api/v3/workflows/{in_other['id']}", {"name": "x"}, format="json").status_code == 404

    placed = create(limited, chain_body("b"))
    assert placed["workspace"] == str(home.id)
    elsewhere = limited.post("/api/v3/workflows", {**chain_body("c"), "workspace": str(other.id)}, format="json")
    assert elsewhere.status_code == 400
    assert elsewhere.json()["errors"] == {"workspace": [NO_SUCH_WORKSPACE]}

    count = Workspace.objects.count()
    new_space = limited.post("/api/v3/workspaces", {"name": "Escape"}, format="json")
    assert new_space.status_code == 403
    assert new_space.json()["detail"] == KEY_LIMITED_TO_WORKSPACE
    assert Workspace.objects.count() == count


def test_a_superusers_key_limited_to_a_workspace_does_not_reach_the_others(user_api):
    root = UserFactory(is_superuser=True, is_staff=True)
    root_api = client_for(root)
    stranger_workflow = create(user_api, chain_body("a"))
    limited = with_key(new_key(root_api, scopes=["admin"], workspace=str(personal(root).id))["key"])
    export = f"/api/v3/workflows/{stranger_workflow['id']}/export"
    assert limited.get(export).status_code == 404
    unlimited = with_key(new_key(root_api, scopes=["admin"])["key"])
    assert unlimited.get(export).status_code == 200


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"revoked_at": timezone.now()}, REVOKED_KEY),
        ({"expires_at": timezone.now() - timedelta(seconds=1)}, "This API key expired at"),
    ],
)
def test_a_revoked_or_expired_key_is_a_401_problem(user_api, change, message):
    created = new_key(user_api)
    ApiKey.objects.filter(pk=created["id"]).update(**change)
    answer = with_key(created["key"]).get("/api/v3/auth/me")
    assert answer.status_code == 401
    assert answer["Content-Type"] == PROBLEM
    assert answer.json()["detail"].startswith(message)


@pytest.mark.parametrize("mangle", [lambda key: key[:-2] + "xx", lambda key: "dwc_nothere1_abc", lambda key: "garbage"])
def test_a_wrong_key_is_a_401_problem(user_api, mangle):
    created = new_key(user_api)
    answer = with_key(mangle(created["key"])).get("/api/v3/auth/me")
    assert answer.status_code == 401
    assert answer.json()["detail"] == INVALID_KEY


def test_a_key_of_a_deactivated_user_is_refused(user, user_api):
    raw_key = new_key(user_api)["key"]
    user.is_active = False
    user.save(update_fields=["is_active"])
    assert with_key(raw_key).get("/api/v3/auth/me").status_code == 401


def test_revoking_stops_the_key_and_is_idempotent(user_api):
    created = new_key(user_api)
    assert user_api.delete(f"/api/v3/auth/api-keys/{created['id']}").status_code == 204
    first = ApiKey.objects.get(pk=created["id"]).revoked_at
    assert first is not None
    assert user_api.delete(f"/api/v3/auth/api-keys/{created['id']}").status_code == 204
    assert ApiKey.objects.get(pk=created["id"]).revoked_at == first
    assert with_key(created["key"]).get("/api/v3/auth/me").status_code == 401
    assert AuditEvent.objects.filter(action="apikey.revoked", target_id=created["id"]).count() == 1


def test_someone_elses_key_cannot_be_revoked(user_api):
    theirs = new_key(client_for(UserFactory()))
    assert user_api.delete(f"/api/v3/auth/api-keys/{theirs['id']}").status_code == 404
    assert user_api.delete("/api/v3/auth/api-keys/not-a-uuid").status_code == 404
    assert ApiKey.objects.get(pk=theirs["id"]).revoked_at is None


def test_keys_cannot_manage_keys_or_change_the_password(user_api):
    admin = with_key(new_key(user_api, scopes=["admin"])["key"])
    count = ApiKey.objects.count()
    minted = admin.post("/api/v3/auth/api-keys", {"name": "more", "scopes": ["admin"]}, format="json")
    assert minted.status_code == 403
    assert minted.json()["detail"] == KEYS_REFUSED
    assert admin.get("/api/v3/auth/api-keys").status_code == 403
    password = {"old_password": "x", "new_password": "y"}
    assert admin.post("/api/v3/auth/password", password, format="json").status_code == 403
    assert ApiKey.objects.count() == count


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"scopes": ["read"]}, "name", "This field is required."),
        ({"name": "  ", "scopes": ["read"]}, "name", "This field may not be blank."),
        ({"name": "x", "scopes": []}, "scopes", "This list may not be empty."),
        ({"name": "x", "scopes": ["root"]}, "scopes.0", '"root" is not a valid choice.'),
        ({"name": "x", "scopes": "read"}, "scopes", 'Expected a list of items but got type "str".'),
        ({"name": "x", "scopes": ["read"], "expires_at": "2001-01-01T00:00:00Z"}, "expires_at", EXPIRY_IN_THE_PAST),
        ({"name": "x", "scopes": ["read"], "expires_at": "soon"}, "expires_at", None),
        ({"name": "x", "scopes": ["read"], "workspace": "not-a-uuid"}, "workspace", "Must be a valid UUID."),
    ],
)
def test_bad_input_is_a_400_and_creates_nothing(user_api, body, field, message):
    answer = user_api.post("/api/v3/auth/api-keys", body, format="json")
    assert answer.status_code == 400
    assert answer["Content-Type"] == PROBLEM
    assert field in answer.json()["errors"]
    if message:
        assert answer.json()["errors"][field] == [message]
    assert not ApiKey.objects.exists()


def test_a_key_for_a_workspace_one_is_not_a_member_of_is_refused(user_api):
    answer = user_api.post(
        "/api/v3/auth/api-keys",
        {"name": "x", "scopes": ["read"], "workspace": str(WorkspaceFactory().id)},
        format="json",
    )
    assert answer.status_code == 400
    assert answer.json()["errors"] == {"workspace": [NO_SUCH_WORKSPACE]}
    assert not ApiKey.objects.exists()


def test_last_used_at_is_written_at_most_once_a_minute(user_api):
    created = new_key(user_api)
    reader = with_key(created["key"])
    reader.get("/api/v3/auth/me")
    first = ApiKey.objects.get(pk=created["id"]).last_used_at
    assert first is not None
    reader.get("/api/v3/auth/me")
    assert ApiKey.objects.get(pk=created["id"]).last_used_at == first

    ApiKey.objects.filter(pk=created["id"]).update(last_used_at=first - timedelta(minutes=2))
    reader.get("/api/v3/auth/me")
    assert ApiKey.objects.get(pk=created["id"]).last_used_at > first


def test_creating_and_revoking_are_audited(user, user_api):
    created = new_key(user_api, name="audited", scopes=["read", "write"])
    event = AuditEvent.objects.get(action="apikey.created", target_id=created["id"])
    assert event.actor_id == user.pk
    assert event.changes["scopes"] == [None, ["read", "write"]]
    assert created["key"] not in str(event.changes)
    assert event.ip == "127.0.0.1"
    user_api.delete(f"/api/v3/auth/api-keys/{created['id']}")
    assert AuditEvent.objects.filter(action="apikey.revoked", target_id=created["id"]).exists()


def test_the_openapi_document_describes_the_api_key_header(api):
    schema = api.get("/api/schema/?format=json").json()
    assert schema["components"]["securitySchemes"]["apiKey"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
