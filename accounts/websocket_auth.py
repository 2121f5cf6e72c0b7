"""Websocket authentication: the session cookie, or a JWT access token in `?token=`.

Browsers on our own pages send the session cookie; other clients cannot set headers on a websocket
handshake, so they pass the access token in the query string. An invalid token means anonymous,
even when a session cookie is present: the client asked to be someone specific and failed.
"""

from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from django.contrib.auth.models import AnonymousUser
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError

from accounts.api.authentication import JWTAuthentication


@database_sync_to_async
def user_for_access_token(raw_token: str):
    authentication = JWTAuthentication()
    try:
        user = authentication.get_user(authentication.get_validated_token(raw_token.encode()))
    except (InvalidToken, TokenError, AuthenticationFailed):
        return AnonymousUser()
    return user if user.is_active else AnonymousUser()


class QueryTokenAuthMiddleware(BaseMiddleware):
    async def __call__(self, scope, receive, send):
        tokens = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token")
        if tokens:
            scope = dict(scope, user=await user_for_access_token(tokens[0]))
        return await super().__call__(scope, receive, send)


def SessionOrTokenAuthMiddleware(inner):  # noqa: N802 - named like the middleware classes it stacks
    return AuthMiddlewareStack(QueryTokenAuthMiddleware(inner))
