"""Login sessions through the API, the admin, browser cookies and websockets: listed, ended one at a
time or all at once, and an ended session is refused from its very next request."""

from datetime import timedelta

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import LoginSession
from audit.models import AuditEvent
from config.asgi import application
from tests.factories import PASSWORD, UserFactory

SESSIONS = "/api/v3/auth/sessions"


def token_login(user, *, address: str = "203.0.113.10", agent: str = "curl/8.5") -> dict:
    answer = APIClient().post(
        "/api/v3/auth/token",
        {"email": user.email, "password": PASSWORD},
        format="json",
        REMOTE_ADDR=address,
        HTTP_USER_AGENT=agent,
    )
    assert answer.status_code == 200, answer.content
    return answer.json()


def bearer(access: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client


def browser_login(user) -> Client:
    browser = Client(HTTP_USER_AGENT="Mozilla/5.0 (X11; Linux x86_64) Chromium")
    answer = browser.post("/accounts/login/", {"username": user.email, "password": PASSWORD})
    assert answer.status_code == 302, answer.content
    return browser


@pytest.mark.django_db
def test_the_list_shows_each_login_with_its_address_agent_and_which_one_is_current(user):
    laptop = token_login(user, address="203.0.113.10", agent="laptop-script/1.0")
    phone = token_login(user, address="198.51.100.7", agent="phone-app/2.0")
    browser_login(user)
    UserFactory()  # someone else's sessions are not listed
    token_login(UserFactory(email="other@example.com"))

    answer = bearer(laptop["access"]).get(SESSIONS)

    assert answer.status_code == 200
    sessions = answer.json()
    assert sorted((row["kind"], row["address"], row["user_agent"]) for row in sessions) == [
        ("browser", "127.0.0.1", "Mozilla/5.0 (X11; Linux x86_64) Chromium"),
        ("token", "198.51.100.7", "phone-app/2.0"),
        ("token", "203.0.113.10", "laptop-script/1.0"),
    ]
    assert [row["address"] for row in sessions if row["current"]] == ["203.0.113.10"]
    assert all(row["created_at"] and row["last_used_at"] and row["expires_at"] for row in sessions)
    assert phone["access"] not in answer.content.decode()


@pytest.mark.django_db
def test_ending_a_session_refuses_its_access_and_refresh_tokens_from_the_next_request(user):
    mine, stolen = token_login(user), token_login(user, address="192.0.2.66")
    me = bearer(mine["access"])
    stolen_id = next(row["id"] for row in me.get(SESSIONS).json() if not row["current"])
    assert bearer(stolen["access"]).get("/api/v3/auth/me").status_code == 200

    assert me.delete(f"{SESSIONS}/{stolen_id}").status_code == 204

    refused = bearer(stolen["access"]).get("/api/v3/auth/me")
    assert refused.status_code == 401
    assert "ended" in refused.json()["detail"]
    refresh = APIClient().post("/api/v3/auth/token/refresh", {"refresh": stolen["refresh"]}, format="json")
    assert refresh.status_code == 401
    assert me.get("/api/v3/auth/me").status_code == 200
    assert [row["id"] for row in me.get(SESSIONS).json()] != [stolen_id]
    assert stolen_id not in {row["id"] for row in me.get(SESSIONS).json()}
    event = AuditEvent.objects.get(action="auth.session_revoked")
    assert event.target_id == str(user.pk)
    assert event.ip == "127.0.0.1"


@pytest.mark.django_db
def test_a_refreshed_session_stays_one_session_and_keeps_working(user):
    tokens = token_login(user)
    refreshed = APIClient().post("/api/v3/auth/token/refresh", {"refresh": tokens["refresh"]}, format="json")
    assert refreshed.status_code == 200
    client = bearer(refreshed.json()["access"])
    assert len(client.get(SESSIONS).json()) == 1
    assert client.get(SESSIONS).json()[0]["current"] is True


@pytest.mark.django_db
def test_another_users_session_and_an_unknown_id_get_the_same_404(user):
    mine = bearer(token_login(user)["access"])
    theirs = token_login(UserFactory(email="stranger@example.com"))
    their_id = LoginSession.objects.get(user__email="stranger@example.com").pk

    for session_id in (their_id, "0" * 32, "not-an-id"):
        answer = mine.delete(f"{SESSIONS}/{session_id}")
        assert answer.status_code == 404
        assert answer.json()["detail"] == "No such session."
    assert bearer(theirs["access"]).get("/api/v3/auth/me").status_code == 200


@pytest.mark.django_db
def test_revoke_all_ends_every_other_session_and_keeps_the_current_one(user):
    current = bearer(token_login(user)["access"])
    others = [token_login(user, address=f"192.0.2.{n}") for n in range(3)]
    browser = browser_login(user)

    answer = current.post(f"{SESSIONS}/revoke-all")

    assert answer.status_code == 200
    assert answer.json() == {"revoked": 4}
    assert [row["current"] for row in current.get(SESSIONS).json()] == [True]
    assert all(bearer(tokens["access"]).get("/api/v3/auth/me").status_code == 401 for tokens in others)
    assert browser.get("/api/v3/auth/me").status_code in (401, 403)
    assert current.post(f"{SESSIONS}/revoke-all").json() == {"revoked": 0}
    assert AuditEvent.objects.filter(action="auth.sessions_revoked").count() == 1


@pytest.mark.django_db
def test_an_ended_browser_session_is_logged_out_on_its_next_page(user):
    browser = browser_login(user)
    assert browser.get("/dashboard/").status_code == 200
    session_id = LoginSession.objects.get(user=user, kind=LoginSession.Kind.BROWSER).pk

    bearer(token_login(user)["access"]).delete(f"{SESSIONS}/{session_id}")

    page = browser.get("/dashboard/")
    assert page.status_code == 302
    assert page["Location"].startswith("/accounts/login/")
    # Logging in again makes a new session; the ended one stays ended.
    browser = browser_login(user)
    assert browser.get("/dashboard/").status_code == 200
    assert LoginSession.objects.filter(user=user, kind="browser", revoked_at__isnull=True).count() == 1


@pytest.mark.django_db
def test_logging_out_ends_the_session_so_it_leaves_the_list(user):
    first, second = token_login(user), token_login(user)
    assert APIClient().post("/api/v3/auth/logout", {"refresh": first["refresh"]}, format="json").status_code == 205
    browser = browser_login(user)
    browser.post("/accounts/logout/")
    kinds = [row["kind"] for row in bearer(second["access"]).get(SESSIONS).json()]
    assert kinds == ["token"]


@pytest.mark.django_db
def test_a_password_change_ends_every_session(user):
    tokens, browser = token_login(user), browser_login(user)
    answer = bearer(tokens["access"]).post(
        "/api/v3/auth/password", {"old_password": PASSWORD, "new_password": "a new long passphrase 42"}, format="json"
    )
    assert answer.status_code == 204
    assert LoginSession.objects.filter(user=user, revoked_at__isnull=True).count() == 0
    assert browser.get("/dashboard/").status_code == 302
    event = AuditEvent.objects.get(action="auth.password_changed")
    assert event.changes["sessions_ended"] == [None, 2]


@pytest.mark.django_db
def test_last_use_is_recorded_at_most_once_a_minute(user, monkeypatch):
    tokens = token_login(user, address="203.0.113.10")
    client = bearer(tokens["access"])
    session = LoginSession.objects.get(user=user)
    client.get("/api/v3/auth/me", REMOTE_ADDR="203.0.113.99")
    assert LoginSession.objects.get(pk=session.pk).last_used_at == session.last_used_at

    later = timezone.now() + timedelta(minutes=2)
    monkeypatch.setattr(timezone, "now", lambda: later)
    client.get("/api/v3/auth/me", REMOTE_ADDR="203.0.113.99")
    used = LoginSession.objects.get(pk=session.pk)
    assert used.last_used_at == later
    assert used.address == "203.0.113.99"


@pytest.mark.django_db
def test_api_keys_cannot_manage_sessions(user):
    from accounts.api_keys import api_key_create

    _, raw_key = api_key_create(user=user, name="ci", scopes=["admin"])
    token_login(user)
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=raw_key)
    assert client.get(SESSIONS).status_code == 403
    assert client.post(f"{SESSIONS}/revoke-all").status_code == 403
    assert LoginSession.objects.filter(user=user, revoked_at__isnull=True).count() == 1


@pytest.mark.django_db
def test_anonymous_callers_get_401(api):
    assert api.get(SESSIONS).status_code == 401
    assert api.post(f"{SESSIONS}/revoke-all").status_code == 401


@pytest.mark.django_db
def test_a_token_naming_an_unknown_session_is_refused(user):
    tokens = token_login(user)
    LoginSession.objects.filter(user=user).delete()  # pruned, or from before sessions were recorded
    assert bearer(tokens["access"]).get("/api/v3/auth/me").status_code == 401
    refresh = APIClient().post("/api/v3/auth/token/refresh", {"refresh": tokens["refresh"]}, format="json")
    assert refresh.status_code == 401


@pytest.mark.django_db
def test_operators_end_sessions_from_the_admin(user, admin_client):
    victim = token_login(user)
    session = LoginSession.objects.get(user=user)
    page = admin_client.get("/admin/accounts/loginsession/")
    assert page.status_code == 200
    assert "203.0.113.10" in page.content.decode()

    answer = admin_client.post(
        "/admin/accounts/loginsession/", {"action": "end_sessions", "_selected_action": [session.pk]}, follow=True
    )

    assert "Ended 1 session(s)." in answer.content.decode()
    assert bearer(victim["access"]).get("/api/v3/auth/me").status_code == 401
    event = AuditEvent.objects.get(action="auth.session_revoked")
    assert event.target_id == str(user.pk)
    assert admin_client.get(f"/admin/accounts/loginsession/{session.pk}/change/").status_code == 200
    assert admin_client.post(f"/admin/accounts/loginsession/{session.pk}/delete/").status_code == 403


# --- websockets ---------------------------------------------------------------------------------


async def connected(path: str, headers: list) -> WebsocketCommunicator:
    socket = WebsocketCommunicator(application, path, headers=[(b"origin", b"http://testserver"), *headers])
    accepted, _ = await socket.connect()
    assert accepted
    subscribed = await socket.receive_json_from(timeout=5)
    assert subscribed["type"] == "subscribed"
    return socket


@pytest.mark.django_db(transaction=True)
def test_an_ended_session_closes_its_open_websockets_token_and_cookie(user):
    from asgiref.sync import async_to_sync, sync_to_async

    tokens = token_login(user)
    browser = browser_login(user)
    cookie = f"sessionid={browser.cookies['sessionid'].value}".encode()
    watcher = bearer(token_login(user, address="192.0.2.1")["access"])

    async def scenario() -> tuple:
        by_token = await connected(f"/ws/dashboard/?token={tokens['access']}", [])
        by_cookie = await connected("/ws/dashboard/", [(b"cookie", cookie)])
        await sync_to_async(watcher.post)(f"{SESSIONS}/revoke-all")
        closed = (await by_token.receive_output(timeout=5), await by_cookie.receive_output(timeout=5))
        again = WebsocketCommunicator(
            application, f"/ws/dashboard/?token={tokens['access']}", headers=[(b"origin", b"http://testserver")]
        )
        await again.connect()
        refused = await again.receive_output(timeout=5)
        for socket in (by_token, by_cookie, again):
            await socket.disconnect()
        return closed, refused

    closed, refused = async_to_sync(scenario)()
    assert [message["type"] for message in closed] == ["websocket.close", "websocket.close"]
    assert [message["code"] for message in closed] == [4401, 4401]
    assert refused == {"type": "websocket.close", "code": 4401}
