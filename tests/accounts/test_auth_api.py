from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from accounts import tasks
from accounts.models import LoginSession, Membership, User
from accounts.services import EMAIL_TAKEN, REGISTRATION_CLOSED, WRONG_PASSWORD
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"
STRONG = "a-Sturdy-passphrase-42"


def register(api, email="ada@example.com", password=STRONG, name="Ada"):
    return api.post("/api/v3/auth/register", {"email": email, "password": password, "name": name}, format="json")


def test_register_token_me_refresh_logout_flow(api):
    created = register(api)
    assert created.status_code == 201, created.content
    assert set(created.json()) == {"id", "email", "name"}
    assert created.json()["email"] == "ada@example.com"

    tokens = api.post("/api/v3/auth/token", {"email": "ada@example.com", "password": STRONG}, format="json")
    assert tokens.status_code == 200
    access, refresh = tokens.json()["access"], tokens.json()["refresh"]

    api.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    me = api.get("/api/v3/auth/me").json()
    assert me["email"] == "ada@example.com"
    assert me["name"] == "Ada"
    assert [(w["role"], w["name"]) for w in me["workspaces"]] == [("owner", "Ada's workspace")]
    api.credentials()

    rotated = api.post("/api/v3/auth/token/refresh", {"refresh": refresh}, format="json")
    assert rotated.status_code == 200
    new_refresh = rotated.json()["refresh"]
    assert new_refresh != refresh and rotated.json()["access"]

    reused = api.post("/api/v3/auth/token/refresh", {"refresh": refresh}, format="json")
    assert reused.status_code == 401
    assert reused["Content-Type"] == PROBLEM

    logout = api.post("/api/v3/auth/logout", {"refresh": new_refresh}, format="json")
    assert logout.status_code == 205

    after_logout = api.post("/api/v3/auth/token/refresh", {"refresh": new_refresh}, format="json")
    assert after_logout.status_code == 401


def test_register_creates_a_personal_workspace_owned_by_the_user(api):
    register(api)
    membership = Membership.objects.get(user__email="ada@example.com")
    assert membership.role == "owner"
    assert membership.workspace.is_personal


def test_wrong_password_is_401_problem(api, user):
    answer = api.post("/api/v3/auth/token", {"email": user.email, "password": "not-it"}, format="json")
    assert answer.status_code == 401
    assert answer["Content-Type"] == PROBLEM
    body = answer.json()
    assert body["status"] == 401 and body["title"] == "Unauthorized" and body["detail"]


def test_weak_password_is_400_with_django_validator_messages(api):
    answer = register(api, password="12345678")
    assert answer.status_code == 400
    assert answer["Content-Type"] == PROBLEM
    messages = answer.json()["errors"]["password"]
    assert "This password is too common." in messages
    assert "This password is entirely numeric." in messages
    assert not User.objects.exists()


def test_duplicate_email_is_400_and_case_insensitive(api, user):
    answer = register(api, email=user.email.upper())
    assert answer.status_code == 400
    assert answer.json()["errors"] == {"email": [EMAIL_TAKEN]}
    assert User.objects.count() == 1


def test_registration_can_be_turned_off(api, settings):
    settings.ACCOUNTS_ALLOW_REGISTRATION = False
    answer = register(api)
    assert answer.status_code == 403
    assert answer.json()["detail"] == REGISTRATION_CLOSED
    assert not User.objects.exists()


def test_malformed_json_is_400_problem(api):
    answer = api.generic("POST", "/api/v3/auth/register", '{"email": "x@example.com",', content_type="application/json")
    assert answer.status_code == 400
    assert answer["Content-Type"] == PROBLEM
    assert "JSON parse error" in answer.json()["detail"]


def test_missing_and_mistyped_fields_are_named(api):
    answer = api.post("/api/v3/auth/register", {"email": "not-an-email", "password": ["x"]}, format="json")
    assert answer.status_code == 400
    errors = answer.json()["errors"]
    assert errors["email"] == ["Enter a valid email address."]
    assert errors["password"] == ["Not a valid string."]
    assert "email" in answer.json()["detail"]


def test_anonymous_request_to_protected_endpoint_is_401_problem(api):
    answer = api.get("/api/v3/auth/me")
    assert answer.status_code == 401
    assert answer["Content-Type"] == PROBLEM
    assert answer.json()["type"] == "/problems/not-authenticated"


def test_garbage_bearer_token_is_401(api):
    api.credentials(HTTP_AUTHORIZATION="Bearer not.a.token")
    answer = api.get("/api/v3/auth/me")
    assert answer.status_code == 401
    assert answer["Content-Type"] == PROBLEM


def status_with_access_token(api, access: str, path: str = "/api/v3/auth/me") -> int:
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    try:
        return api.get(path).status_code
    finally:
        api.credentials()


def test_logout_ends_the_access_tokens_of_its_session_and_of_no_other(api, user):
    """An access token used to live out its 15 minutes after logout."""
    login = {"email": user.email, "password": PASSWORD}
    first, second = (api.post("/api/v3/auth/token", login, format="json").json() for _ in range(2))
    rotated = api.post("/api/v3/auth/token/refresh", {"refresh": first["refresh"]}, format="json").json()
    for access in (first["access"], rotated["access"], second["access"]):
        assert status_with_access_token(api, access) == 200

    assert api.post("/api/v3/auth/logout", {"refresh": rotated["refresh"]}, format="json").status_code == 205
    assert status_with_access_token(api, first["access"]) == 401
    assert status_with_access_token(api, rotated["access"]) == 401
    assert status_with_access_token(api, second["access"]) == 200


def test_a_logged_out_session_is_forgotten_once_its_refresh_token_has_expired(api, user, monkeypatch):
    tokens = api.post("/api/v3/auth/token", {"email": user.email, "password": PASSWORD}, format="json").json()
    api.post("/api/v3/auth/logout", {"refresh": tokens["refresh"]}, format="json")
    tasks.login_sessions_prune()
    assert LoginSession.objects.filter(user=user, revoked_at__isnull=False).count() == 1
    later = timezone.now() + settings.SIMPLE_JWT["REFRESH_TOKEN_LIFETIME"] + timedelta(seconds=1)
    monkeypatch.setattr(timezone, "now", lambda: later)
    tasks.login_sessions_prune()
    assert LoginSession.objects.filter(user=user).count() == 0


def test_logout_with_an_invalid_token_is_401(api):
    assert api.post("/api/v3/auth/logout", {"refresh": "nope"}, format="json").status_code == 401
    assert api.post("/api/v3/auth/logout", {}, format="json").json()["errors"] == {
        "refresh": ["This field is required."]
    }


def test_password_change(api, user, user_api):
    wrong = user_api.post("/api/v3/auth/password", {"old_password": "nope", "new_password": STRONG}, format="json")
    assert wrong.status_code == 400
    assert wrong.json()["errors"] == {"old_password": [WRONG_PASSWORD]}

    weak = user_api.post("/api/v3/auth/password", {"old_password": PASSWORD, "new_password": "abc"}, format="json")
    assert weak.status_code == 400
    assert "This password is too short. It must contain at least 8 characters." in weak.json()["errors"]["new_password"]

    changed = user_api.post("/api/v3/auth/password", {"old_password": PASSWORD, "new_password": STRONG}, format="json")
    assert changed.status_code == 204
    assert api.post("/api/v3/auth/token", {"email": user.email, "password": PASSWORD}, format="json").status_code == 401
    assert api.post("/api/v3/auth/token", {"email": user.email, "password": STRONG}, format="json").status_code == 200


def test_password_change_revokes_refresh_tokens(api, user, user_api):
    refresh = api.post("/api/v3/auth/token", {"email": user.email, "password": PASSWORD}, format="json").json()[
        "refresh"
    ]
    user_api.post("/api/v3/auth/password", {"old_password": PASSWORD, "new_password": STRONG}, format="json")
    assert api.post("/api/v3/auth/token/refresh", {"refresh": refresh}, format="json").status_code == 401


def test_session_login_works_for_the_browsable_api(client, user):
    assert client.login(email=user.email, password=PASSWORD)
    page = client.get("/api/v3/auth/me", HTTP_ACCEPT="text/html")
    assert page.status_code == 200
    assert b"Django REST framework" in page.content
    assert user.email.encode() in page.content
