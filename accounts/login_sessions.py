"""Login sessions: every login is one LoginSession its person can see and end.

A token login (POST auth/token) makes a SessionRefreshToken whose `sid` claim is the session's id.
Rotating it keeps every claim but jti, exp and iat (simplejwt's TokenRefreshSerializer), and the
access tokens made from it copy its claims: every token of one login carries the same sid, and no
other login's tokens do. A browser login (the dashboard's, the admin's, the browsable API's form)
keeps the session's id in the Django session (BROWSER_SESSION_KEY).

Ending a session (logout, DELETE auth/sessions/{id}, revoke-all, a password change) sets its
`revoked_at`. From the next request on, the JWT authentication refuses its access tokens, the refresh
endpoint its refresh token, LoginSessionMiddleware logs its browser out; open websockets of the
session hear it on the channel layer (login_session_group) and close.

A token carrying a sid that names no session is refused too (its session was pruned, or it was made
before sessions were recorded: the client logs in again). Tokens without any sid can only be made
with the signing key by our own code (tests, benchmarks); they live out their short lifetime.
"""

import uuid
from datetime import timedelta

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.tokens import RefreshToken, Token

from accounts.models import LoginSession, User
from audit.services import AnyRequest, audit_record
from core.row_queries import RowWithRelated
from core.throttling import client_ip

SESSION_CLAIM = "sid"
BROWSER_SESSION_KEY = "dwc_login_session"
SESSION_ENDED = "This session was ended (logged out or revoked): log in again."
NO_SUCH_SESSION = "No such session."
# last_used_at (and the address) are written at most this often per session, not on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)
USER_AGENT_LENGTH = LoginSession._meta.get_field("user_agent").max_length
# The close code an open websocket of an ended session gets (4000-4999 are the application's).
WEBSOCKET_CLOSE_SESSION_ENDED = 4401


class SessionEnded(Exception):
    """The token's or cookie's login session was ended, or is unknown."""


class SessionRefreshToken(RefreshToken):
    """A refresh token that starts a session. Parsing an existing token (any refresh token) keeps its claims."""

    def __init__(self, token=None, verify: bool = True):
        super().__init__(token, verify)
        if token is None:
            self[SESSION_CLAIM] = uuid.uuid4().hex


def login_session_group(session_id: str) -> str:
    """The channel layer group of a session's open websockets."""
    return f"login-session.{session_id}"


def _http_request(request: AnyRequest | None):
    return getattr(request, "_request", request)


def _client(request: AnyRequest | None) -> dict:
    """The address and user agent to record; nothing without a request (a websocket connect), so that
    what the last request recorded stays."""
    request = _http_request(request)
    if request is None:
        return {}
    return {
        "address": client_ip(request)[:64],
        "user_agent": request.META.get("HTTP_USER_AGENT", "")[:USER_AGENT_LENGTH],
    }


# --- starting and using sessions ----------------------------------------------------------------


def token_session_start(*, user: User, request: AnyRequest | None = None) -> SessionRefreshToken:
    """A new session for a token login: its refresh token."""
    refresh = SessionRefreshToken.for_user(user)
    LoginSession.objects.create(
        id=refresh[SESSION_CLAIM],
        user=user,
        kind=LoginSession.Kind.TOKEN,
        expires_at=timezone.now() + jwt_settings.REFRESH_TOKEN_LIFETIME,
        **_client(request),
    )
    return refresh


def token_session_refreshed(*, refresh: Token, request: AnyRequest | None = None) -> None:
    """Before a refresh token is traded for new tokens: refuse it if its session ended, else record the
    use and extend the session by the new refresh token's lifetime. Raises SessionEnded."""
    session_id = refresh.get(SESSION_CLAIM)
    if not session_id:
        return
    now = timezone.now()
    updated = LoginSession.objects.filter(pk=session_id, revoked_at__isnull=True).update(
        last_used_at=now,
        expires_at=now + jwt_settings.REFRESH_TOKEN_LIFETIME,
        **_client(request),
    )
    if not updated:
        raise SessionEnded(SESSION_ENDED)


def token_session_user(token: Token, request: AnyRequest | None = None) -> User | None:
    """For every request with an access token of a login session: its user, read with the session in
    one query (None for a token without a session). Raises SessionEnded if the session ended. A write
    at most once a LAST_USED_RESOLUTION."""
    session_id = token.get(SESSION_CLAIM)
    if not session_id:
        return None
    session = _session_with_user(str(session_id))
    _check(session, request)
    return session.user


# The session and its user from one row: every authenticated request asks (core.row_queries).
_session_with_user = RowWithRelated(lambda session_id: LoginSession.objects.filter(pk=session_id), "user").get


def login_session_check(session_id: str, request: AnyRequest | None) -> None:
    """Raise SessionEnded if the login session ended; one query."""
    _check(LoginSession.objects.filter(pk=session_id).only("revoked_at", "last_used_at").first(), request)


def _check(session: LoginSession | None, request: AnyRequest | None) -> None:
    if session is None or session.revoked_at is not None:
        raise SessionEnded(SESSION_ENDED)
    now = timezone.now()
    if now - session.last_used_at >= LAST_USED_RESOLUTION:
        LoginSession.objects.filter(pk=session.pk).update(last_used_at=now, **_client(request))


def browser_session_start(*, request, user: User) -> None:
    """After a form login (django.contrib.auth.login): record the browser's session, or keep the one
    its cookie already names when the same person logs in again."""
    session = request.session
    known = session.get(BROWSER_SESSION_KEY)
    if known and LoginSession.objects.filter(pk=known, user=user, revoked_at__isnull=True).exists():
        return
    login_session = LoginSession.objects.create(
        id=uuid.uuid4().hex,
        user=user,
        kind=LoginSession.Kind.BROWSER,
        expires_at=timezone.now() + timedelta(seconds=settings.SESSION_COOKIE_AGE),
        **_client(request),
    )
    session[BROWSER_SESSION_KEY] = login_session.pk


def browser_session_check(request) -> None:
    """For every request with a logged-in session cookie: raise SessionEnded if its login session ended.
    A session logged in before sessions were recorded gets one now, so that it can be listed and ended."""
    session_id = request.session.get(BROWSER_SESSION_KEY)
    if session_id is None:
        browser_session_start(request=request, user=request.user)
        return
    login_session_check(session_id, request)


def _is_browser_login(request, user: User) -> bool:
    """Whether django.contrib.auth.login just logged `user` into this request's session (a form login),
    as opposed to the token endpoint, which reports its logins with the same signal."""
    session = getattr(request, "session", None)
    return (
        session is not None
        and session.get(SESSION_KEY) == user._meta.pk.value_to_string(user)
        and BACKEND_SESSION_KEY in session
        and HASH_SESSION_KEY in session
    )


def browser_login_recorded(sender, request, user: User, **kwargs) -> None:
    """user_logged_in's receiver (connected in AccountsConfig.ready)."""
    if request is not None and _is_browser_login(request, user):
        browser_session_start(request=request, user=user)


def browser_logout_recorded(sender, request, user: User | None, **kwargs) -> None:
    """user_logged_out's receiver: the browser's session is over, ended as any other (its websockets
    close); the logout itself is audited as auth.logout."""
    session_id = request.session.get(BROWSER_SESSION_KEY) if hasattr(request, "session") else None
    if session_id and user is not None:
        _revoke([session_id], user=user, actor=user, request=request, action=None)


def current_session_id(request: AnyRequest | None) -> str | None:
    """The login session the request came with: its access token's, or its browser's."""
    if request is None:
        return None
    auth = getattr(request, "auth", None)
    if isinstance(auth, Token):
        return auth.get(SESSION_CLAIM)
    session = getattr(_http_request(request), "session", None)
    return session.get(BROWSER_SESSION_KEY) if session is not None else None


# --- listing and ending -------------------------------------------------------------------------


def login_sessions_live(user: User) -> QuerySet[LoginSession]:
    """The user's sessions that can still be used, most recently used first."""
    return LoginSession.objects.filter(user=user, revoked_at__isnull=True, expires_at__gt=timezone.now())


def login_session_get(*, user: User, session_id: str) -> LoginSession:
    """One of the user's live sessions; Http404 alike for another user's and an unknown id."""
    login_session = login_sessions_live(user).filter(pk=str(session_id)).first()
    if login_session is None:
        raise Http404(NO_SUCH_SESSION)
    return login_session


def login_session_revoke(*, login_session: LoginSession, actor: User, request: AnyRequest | None = None) -> None:
    """End one session: its tokens and cookie are refused from the next request, its websockets close."""
    _revoke([login_session.pk], user=login_session.user, actor=actor, request=request, action="auth.session_revoked")


def login_sessions_revoke_all(*, user: User, actor: User, request: AnyRequest | None = None) -> int:
    """End all of the user's sessions but the one the request came with. Returns how many ended."""
    others = login_sessions_live(user).exclude(pk=current_session_id(request) or "")
    return _revoke(
        list(others.values_list("pk", flat=True)),
        user=user,
        actor=actor,
        request=request,
        action="auth.sessions_revoked",
    )


def login_sessions_end_all(*, user: User) -> int:
    """End every session of the user (a password change: the caller audits it). Returns how many."""
    return _revoke(
        list(login_sessions_live(user).values_list("pk", flat=True)), user=user, actor=user, request=None, action=None
    )


def token_session_logout(*, refresh: Token, user: User | None, request: AnyRequest | None = None) -> None:
    """Logout with a refresh token: end its session (idempotent)."""
    session_id = refresh.get(SESSION_CLAIM)
    if session_id and user is not None:
        _revoke([session_id], user=user, actor=user, request=request, action=None)


def _revoke(session_ids: list[str], *, user: User, actor: User, request, action: str | None) -> int:
    with transaction.atomic():
        ended = list(
            LoginSession.objects.filter(pk__in=session_ids, user=user, revoked_at__isnull=True)
            .select_for_update()
            .values_list("pk", flat=True)
        )
        LoginSession.objects.filter(pk__in=ended).update(revoked_at=timezone.now())
        if action is not None and ended:
            audit_record(
                action=action,
                actor=actor,
                target=user,
                changes={"sessions": [len(ended), 0]},
                request=request,
            )
        transaction.on_commit(lambda: _close_websockets(ended))
    return len(ended)


def _close_websockets(session_ids: list[str]) -> None:
    channel_layer = get_channel_layer()
    if channel_layer is None:
        return
    for session_id in session_ids:
        async_to_sync(channel_layer.group_send)(login_session_group(session_id), {"type": "login_session.ended"})


def login_sessions_prune() -> int:
    """Forget sessions past their expiry: their refresh tokens and cookies are expired too, so nothing can
    present them again (a token naming an unknown session is refused anyway)."""
    deleted, _ = LoginSession.objects.filter(expires_at__lte=timezone.now()).delete()
    return deleted
