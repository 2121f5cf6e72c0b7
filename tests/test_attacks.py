"""Attacks on authentication and on what writable endpoints accept: each is refused, nothing leaks."""

import base64
import json
from datetime import timedelta

import jwt
import pytest
from django.conf import settings
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from accounts.models import Membership, Workspace
from tests.canary import canaries
from tests.conftest import client_for
from tests.factories import PASSWORD, UserFactory
from workflows.models import Credential, Workflow
from workflows.services.credentials import credential_save

pytestmark = pytest.mark.django_db

CANARY = "canary-secret-9f1e2d3c"


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def me_status(token: str) -> int:
    return bearer(token).get("/api/v3/auth/me").status_code


def forged(claims: dict, *, key: str, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


def test_forged_expired_and_tampered_access_tokens_are_401(user):
    good = AccessToken.for_user(user)
    assert me_status(str(good)) == 200
    claims = dict(good.payload)

    expired = AccessToken.for_user(user)
    expired.set_exp(lifetime=-timedelta(seconds=1))
    assert me_status(str(expired)) == 401

    assert me_status(forged(claims, key="not-the-signing-key-" * 2)) == 401
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT"}).encode()).rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert me_status(f"{header}.{body}.") == 401

    other = UserFactory()
    head, _payload, signature = str(good).split(".")
    tampered = {**claims, "user_id": str(other.pk)}
    tampered_body = base64.urlsafe_b64encode(json.dumps(tampered).encode()).rstrip(b"=").decode()
    assert me_status(f"{head}.{tampered_body}.{signature}") == 401


def test_a_deactivated_users_token_is_401(user):
    token = str(AccessToken.for_user(user))
    user.is_active = False
    user.save()
    assert me_status(token) == 401


def test_a_rotated_refresh_token_cannot_be_reused(api, user):
    first = api.post("/api/v3/auth/token", {"email": user.email, "password": PASSWORD}, format="json").json()
    rotated = api.post("/api/v3/auth/token/refresh", {"refresh": first["refresh"]}, format="json")
    assert rotated.status_code == 200
    again = api.post("/api/v3/auth/token/refresh", {"refresh": first["refresh"]}, format="json")
    assert again.status_code == 401


def test_access_tokens_issued_before_a_password_change_are_revoked(user):
    old = RefreshToken.for_user(user)
    old_access = str(old.access_token)
    old_access_payload = jwt.decode(old_access, options={"verify_signature": False})
    # Issued a second earlier than the change (tokens carry whole seconds).
    earlier = AccessToken.for_user(user)
    earlier["iat"] = old_access_payload["iat"] - 2
    answer = bearer(old_access).post(
        "/api/v3/auth/password", {"old_password": PASSWORD, "new_password": "A-new-Passw0rd-2026"}, format="json"
    )
    assert answer.status_code == 204
    assert me_status(str(earlier)) == 401
    assert APIClient().post("/api/v3/auth/token/refresh", {"refresh": str(old)}, format="json").status_code == 401
    fresh = APIClient().post(
        "/api/v3/auth/token", {"email": user.email, "password": "A-new-Passw0rd-2026"}, format="json"
    )
    assert me_status(fresh.json()["access"]) == 200


def test_access_tokens_are_short_lived_and_refresh_tokens_rotated():
    # (A separate JWT_SIGNING_KEY replacing SECRET_KEY: tests/test_security.py.)
    assert settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"] <= timedelta(minutes=15)
    assert settings.SIMPLE_JWT["ROTATE_REFRESH_TOKENS"] and settings.SIMPLE_JWT["BLACKLIST_AFTER_ROTATION"]


def test_writable_endpoints_ignore_or_refuse_fields_they_do_not_own(user, user_api):
    other = UserFactory()
    foreign = Workspace.objects.get(memberships__user=other)

    created = user_api.post(
        "/api/v3/workflows",
        {"name": "Mine", "workspace": str(foreign.pk), "created_by": str(other.pk), "id": str(foreign.pk)},
        format="json",
    )
    assert created.status_code in (400, 404), created.content
    assert not Workflow.objects.filter(workspace=foreign).exists()

    plain = user_api.post("/api/v3/workflows", {"name": "Mine", "created_by": str(other.pk)}, format="json")
    if plain.status_code == 201:
        assert Workflow.objects.get(pk=plain.json()["id"]).created_by == user
    else:
        assert plain.status_code == 400

    registered = APIClient().post(
        "/api/v3/auth/register",
        {"email": "new@example.com", "password": "Sturdy-Passw0rd-1", "name": "N", "is_staff": True, "role": "owner"},
        format="json",
    )
    assert registered.status_code in (201, 400)
    assert not type(user).objects.filter(email="new@example.com", is_staff=True).exists()

    credential = user_api.post(
        "/api/v3/credentials",
        {"name": "c", "kind": "http_bearer", "value": {"token": CANARY}, "workspace": str(foreign.pk)},
        format="json",
    )
    assert credential.status_code in (400, 404)
    assert not Credential.objects.filter(workspace=foreign).exists()


def test_an_admin_cannot_grant_the_owner_role_and_a_viewer_cannot_promote_themselves(user):
    owner = user
    workspace = Workspace.objects.create(name="Team", created_by=owner)
    Membership.objects.create(workspace=workspace, user=owner, role=Membership.Role.OWNER)
    admin, viewer = UserFactory(), UserFactory()
    Membership.objects.create(workspace=workspace, user=admin, role=Membership.Role.ADMIN)
    Membership.objects.create(workspace=workspace, user=viewer, role=Membership.Role.VIEWER)

    url = f"/api/v3/workspaces/{workspace.pk}/members/{viewer.pk}"
    assert client_for(admin).patch(url, {"role": "owner"}, format="json").status_code == 403
    assert client_for(viewer).patch(url, {"role": "admin"}, format="json").status_code == 403
    assert Membership.objects.get(workspace=workspace, user=viewer).role == Membership.Role.VIEWER


def test_no_response_carries_a_secret_or_a_password_hash(user, user_api):
    """Every response of the suite is searched for the secrets made before it (tests/canary.py); this
    test makes one of each kind and reads every page that describes them."""
    workspace = Workspace.objects.get(memberships__user=user)
    credential = credential_save(workspace_id=workspace.pk, name="canary", kind="http_bearer", value={"token": CANARY})
    workflow = user_api.post(
        "/api/v3/workflows",
        {
            "name": "Uses the canary",
            "nodes": [
                {
                    "key": "call",
                    "type": "http_request",
                    "config": {"url": "https://example.org", "credential": "canary"},
                }
            ],
        },
        format="json",
    ).json()
    hook = user_api.post(f"/api/v3/workflows/{workflow['id']}/webhooks", {"secret": CANARY + "-hook"}, format="json")
    assert hook.status_code == 201, hook.content
    key = user_api.post("/api/v3/auth/api-keys", {"name": "k", "scopes": ["read"]}, format="json")
    assert key.status_code == 201, key.content
    # The search knows them all, so each GET below would fail if its body held one (or a password hash).
    assert all(canaries.knows(secret) for secret in (CANARY, CANARY + "-hook", hook.json()["token"], key.json()["key"]))

    paths = [
        "/api/v3/auth/me",
        "/api/v3/credentials",
        f"/api/v3/credentials/{credential.pk}",
        f"/api/v3/workflows/{workflow['id']}",
        f"/api/v3/workflows/{workflow['id']}/export",
        f"/api/v3/workflows/{workflow['id']}/webhooks",
        f"/api/v3/webhooks/{hook.json()['id']}",
        "/api/v3/auth/api-keys",
        f"/api/v3/workspaces/{workspace.pk}/members",
        "/api/v3/audit/events",
        "/api/v3/audit/events/export?format=json",
    ]
    for path in paths:
        answer = user_api.get(path)
        assert answer.status_code == 200, (path, answer.status_code)
        if answer.streaming:  # searched as it is read
            b"".join(answer.streaming_content)


def test_references_to_another_workspaces_objects_are_refused(user, user_api):
    """B (this user) names A's workflow as an event source, or A's workspace: 400/404, nothing created."""
    other = UserFactory()
    theirs = Workflow.objects.create(
        workspace=Workspace.objects.get(memberships__user=other), name="A's", created_by=other
    )
    mine = user_api.post("/api/v3/workflows", {"name": "B's"}, format="json").json()

    trigger = user_api.post(
        f"/api/v3/workflows/{mine['id']}/event-triggers",
        {"source_workflow": str(theirs.pk), "on": "succeeded"},
        format="json",
    )
    assert trigger.status_code in (400, 404), trigger.content
    schedule_on_theirs = user_api.post(f"/api/v3/workflows/{theirs.pk}/schedules", {"cron": "* * * * *"}, format="json")
    assert schedule_on_theirs.status_code == 404
    imported = user_api.post(
        f"/api/v3/workflows/import?workspace={theirs.workspace_id}", {"name": "Sneaky", "nodes": []}, format="json"
    )
    assert imported.status_code in (400, 404)
    assert list(Workflow.objects.filter(workspace=theirs.workspace).values_list("name", flat=True)) == ["A's"]
