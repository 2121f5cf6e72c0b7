"""The middleware under ASGI (daphne): the same answers as under WSGI, and few crossings between the
event loop and the request's thread (config.settings.base.MIDDLEWARE, bench/README.md)."""

import asyncio
import json

import pytest
from asgiref import sync
from asgiref.sync import async_to_sync
from django.core.handlers.asgi import ASGIHandler
from django.test import AsyncClient, override_settings

from accounts.ip_allow_lists import REFUSED
from accounts.models import LoginSession
from tests.accounts.test_login_sessions import SESSIONS, bearer, browser_login, token_login

PROBLEM = "application/problem+json"


def asgi_get(path: str, *, address: str = "127.0.0.1", **headers) -> dict:
    """GET `path` from `address` through Django's ASGI handler, as daphne calls it; the response's
    start message, with the body under "body"."""
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "query_string": b"",
        "headers": [(b"host", b"localhost"), *((name.encode(), value.encode()) for name, value in headers.items())],
        "client": (address, 40000),
        "server": ("127.0.0.1", 80),
    }
    received, started, body = [], [], []

    async def receive():
        if received:
            await asyncio.Event().wait()  # no disconnect before the answer
        received.append(True)
        return {"type": "http.request", "body": b""}

    async def send(message):
        if message["type"] == "http.response.start":
            started.append(message)
        else:
            body.append(message.get("body", b""))

    async def request():
        await ASGIHandler()(scope, receive, send)

    async_to_sync(request)()
    return {**started[0], "body": b"".join(body)}


@pytest.mark.django_db
def test_a_request_crosses_to_its_thread_and_back_a_fixed_few_times(monkeypatch):
    """Django's own middleware, when on the event loop, goes to the request's thread and back for each
    of its hooks; ours are synchronous, so all of them run in that thread, entered once. For /health:
    request_started's receivers, the middleware, the view middleware (CSRF, Prometheus), the view and
    the response's close: 6 trips to the thread, and 1 back to the loop for the view's resolution.
    With IpAllowListMiddleware above Django's message, clickjacking and Prometheus middleware, 11."""
    crossings = {"to_thread": 0, "to_loop": 0}
    to_thread, to_loop = sync.SyncToAsync.__call__, sync.AsyncToSync.__call__

    async def counted_to_thread(self, *args, **kwargs):
        crossings["to_thread"] += 1
        return await to_thread(self, *args, **kwargs)

    def counted_to_loop(self, *args, **kwargs):
        crossings["to_loop"] += 1
        return to_loop(self, *args, **kwargs)

    monkeypatch.setattr(sync.SyncToAsync, "__call__", counted_to_thread)
    monkeypatch.setattr(sync.AsyncToSync, "__call__", counted_to_loop)
    started = asgi_get("/health")
    assert started["status"] == 200
    # async_to_sync(request) in asgi_get is one more trip to the loop.
    assert crossings == {"to_thread": 6, "to_loop": 2}


@pytest.mark.django_db
def test_the_request_id_is_echoed_under_asgi():
    started = asgi_get("/health", **{"x-request-id": "abc-123"})
    assert (b"X-Request-ID", b"abc-123") in started["headers"]
    assert (b"X-Frame-Options", b"DENY") in started["headers"]


@pytest.mark.django_db
@override_settings(DWC_MAX_REQUEST_BYTES=100)
def test_a_body_over_the_limit_is_a_413_problem_under_asgi(user_api):
    async def post():
        return await AsyncClient().post("/api/v3/workflows", {"name": "x" * 200}, content_type="application/json")

    answer = async_to_sync(post)()
    assert answer.status_code == 413
    assert answer["Content-Type"] == PROBLEM
    assert answer.json()["detail"] == "The request body is over the limit of 100 bytes."


@pytest.mark.django_db
def test_a_nul_in_the_query_is_a_400_problem_under_asgi():
    async def get():
        return await AsyncClient().get("/health?name=a%00b")

    answer = async_to_sync(get)()
    assert answer.status_code == 400
    assert answer["Content-Type"] == PROBLEM


@pytest.mark.django_db(transaction=True)  # ASGIHandler closes the connection at each request's end
@override_settings(DWC_ADMIN_ALLOWED_IPS=["10.9.0.0/16"])
def test_the_admin_sites_list_holds_under_asgi():
    assert asgi_get("/admin/login/", address="10.9.0.1")["status"] == 200
    refused = asgi_get("/admin/login/", address="203.0.113.61")
    assert refused["status"] == 403
    assert json.loads(refused["body"])["detail"] == REFUSED["admin"]


@pytest.mark.django_db
def test_an_ended_browser_session_is_logged_out_under_asgi(user):
    cookies = browser_login(user).cookies

    async def dashboard():
        client = AsyncClient()
        client.cookies = cookies
        return await client.get("/dashboard/")

    assert async_to_sync(dashboard)().status_code == 200
    session_id = LoginSession.objects.get(user=user, kind=LoginSession.Kind.BROWSER).pk
    bearer(token_login(user)["access"]).delete(f"{SESSIONS}/{session_id}")
    page = async_to_sync(dashboard)()
    assert page.status_code == 302
    assert page["Location"].startswith("/accounts/login/")
