"""Websocket authentication: the session cookie, or a JWT access token in `?token=`.

Browsers on our own pages send the session cookie; other clients cannot set headers on a websocket
handshake, so they pass the access token in the query string. An invalid token means anonymous,
even when a session cookie is present: the client asked to be someone specific and failed. So does
a token or a cookie whose login session was ended (accounts.login_sessions).

The scope's `login_session_id` names the connection's login session; consumers that mix in
LoginSessionBound join its group and close when the session is ended while they are open.

Workspaces' IP allow-lists apply to a connection as to a request: ClientAddressMiddleware gives
accounts.access the handshake's client address, taken as the throttles take a request's.
"""

from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError

from accounts.api.authentication import JWTAuthentication
from accounts.ip_allow_lists import client_context
from accounts.login_sessions import (
    BROWSER_SESSION_KEY,
    SESSION_CLAIM,
    WEBSOCKET_CLOSE_SESSION_ENDED,
    SessionEnded,
    login_session_check,
    login_session_group,
)


@database_sync_to_async
def user_for_access_token(raw_token: str) -> tuple:
    """(user, login session id) of an access token; (AnonymousUser, None) for a token refused."""
    authentication = JWTAuthentication()
    try:
        token = authentication.get_validated_token(raw_token.encode())
        user = authentication.get_user(token)
    except (InvalidToken, TokenError, AuthenticationFailed):
        return AnonymousUser(), None
    return (user, token.get(SESSION_CLAIM)) if user.is_active else (AnonymousUser(), None)


@database_sync_to_async
def browser_session_ended(session_id: str) -> bool:
    try:
        login_session_check(session_id, None)
    except SessionEnded:
        return True
    return False


class QueryTokenAuthMiddleware(BaseMiddleware):
    async def __call__(self, scope, receive, send):
        tokens = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
        if tokens:
            user, session_id = await user_for_access_token(tokens[0])
            scope = dict(scope, user=user, login_session_id=session_id)
        elif scope.get("user") is not None and scope["user"].is_authenticated:
            session_id = scope["session"].get(BROWSER_SESSION_KEY)
            if session_id is None or await browser_session_ended(session_id):
                # Ended, or logged in before sessions were recorded: its next page load records one.
                scope = dict(scope, user=AnonymousUser(), login_session_id=None)
            else:
                scope = dict(scope, login_session_id=session_id)
        return await super().__call__(scope, receive, send)


def scope_request(scope) -> HttpRequest:
    """The handshake as an HttpRequest holding what the client address (core.throttling.client_ip) and
    the audit trail read of it: the peer as REMOTE_ADDR, X-Forwarded-For and User-Agent."""
    request = HttpRequest()
    request.path = request.path_info = scope.get("path", "")
    request.META["REMOTE_ADDR"] = (scope.get("client") or [""])[0] or ""
    for raw_name, raw_value in scope.get("headers", []):
        name = raw_name.decode("latin-1").lower()
        if name in ("x-forwarded-for", "user-agent"):
            key = "HTTP_" + name.upper().replace("-", "_")
            value = raw_value.decode("latin-1")
            # Repeated headers read as one, comma-separated, as a WSGI or ASGI server joins them for a request.
            request.META[key] = f"{request.META[key]},{value}" if key in request.META else value
    return request


class ClientAddressMiddleware(BaseMiddleware):
    """Workspaces' IP allow-lists check the consumers' access (accounts.access) against the connection's
    client address; a refusal is audited at once (accounts.ip_allow_lists)."""

    async def __call__(self, scope, receive, send):
        with client_context(scope_request(scope), record_after=False):
            return await super().__call__(scope, receive, send)


def SessionOrTokenAuthMiddleware(inner):  # noqa: N802 - named like the middleware classes it stacks
    return AuthMiddlewareStack(QueryTokenAuthMiddleware(ClientAddressMiddleware(inner)))


class LoginSessionBound:
    """For consumers: close the connection when its login session is ended while it is open."""

    async def login_session_join(self) -> None:
        session_id = self.scope.get("login_session_id")
        if session_id:
            self.login_session_joined = login_session_group(session_id)
            await self.channel_layer.group_add(self.login_session_joined, self.channel_name)

    async def login_session_leave(self) -> None:
        group = getattr(self, "login_session_joined", None)
        if group:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def login_session_ended(self, message: dict) -> None:
        await self.close(code=WEBSOCKET_CLOSE_SESSION_ENDED)
