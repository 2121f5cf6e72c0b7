"""Login sessions of JWTs, so that logging out ends the access tokens too, not only the refresh token.

A login makes a SessionRefreshToken with a session id (the `sid` claim). Rotating it keeps every
claim but jti, exp and iat (simplejwt's TokenRefreshSerializer), and the access tokens made from it
copy its claims: every token of one login carries the same sid, and no other login's tokens do.
Logout records the sid as revoked until the last access token it could have made has expired; the
JWT authentication (API and websockets) refuses access tokens whose sid is revoked. Revoking a whole
user's tokens (a password change) is `User.password_changed_at`'s job instead.
"""

import uuid

from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.tokens import RefreshToken, Token

from accounts.models import RevokedSession

SESSION_CLAIM = "sid"
SESSION_ENDED = "This token's session was logged out."


class SessionRefreshToken(RefreshToken):
    """A refresh token that starts a session. Parsing an existing token (any refresh token) keeps its claims."""

    def __init__(self, token=None, verify: bool = True):
        super().__init__(token, verify)
        if token is None:
            self[SESSION_CLAIM] = uuid.uuid4().hex


def session_revoke(*, refresh: RefreshToken) -> None:
    """Refuse the access tokens of `refresh`'s session from now on. Tokens made before sessions had an
    id carry none and live out their lifetime. Idempotent."""
    session_id = refresh.get(SESSION_CLAIM)
    if not session_id:
        return
    try:
        with transaction.atomic():
            RevokedSession.objects.create(
                session_id=session_id, expires_at=timezone.now() + jwt_settings.ACCESS_TOKEN_LIFETIME
            )
    except IntegrityError:
        pass  # revoked already


def session_is_revoked(token: Token) -> bool:
    session_id = token.get(SESSION_CLAIM)
    return bool(session_id) and RevokedSession.objects.filter(session_id=session_id).exists()


def revoked_sessions_prune() -> int:
    """Forget revocations whose access tokens have all expired."""
    deleted, _ = RevokedSession.objects.filter(expires_at__lte=timezone.now()).delete()
    return deleted
