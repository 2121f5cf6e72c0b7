"""`X-API-Key: <key>`: the request acts as the key's creator, within the key's scopes and workspace."""

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.authentication import JWTAuthentication as SimpleJWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken

from accounts.api_keys import ApiKeyRejected, api_key_authenticate
from accounts.tokens import SESSION_ENDED, session_is_revoked

API_KEY_HEADER = "X-API-Key"


class ApiKeyAuthentication(BaseAuthentication):
    """Sets `request.auth` to the ApiKey and `request.user.api_key` to it too, which is what
    accounts.access and ApiKeyScopePermission read. A wrong, revoked or expired key is a 401."""

    def authenticate(self, request):
        raw_key = request.headers.get(API_KEY_HEADER, "").strip()
        if not raw_key:
            return None
        try:
            key = api_key_authenticate(raw_key=raw_key)
        except ApiKeyRejected as error:
            raise AuthenticationFailed(str(error)) from error
        user = key.user
        user.api_key = key
        return user, key

    def authenticate_header(self, request) -> str:
        return f'ApiKey header="{API_KEY_HEADER}"'


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = ApiKeyAuthentication
    name = "apiKey"

    def get_security_definition(self, auto_schema) -> dict:
        return {"type": "apiKey", "in": "header", "name": API_KEY_HEADER}


class JWTAuthentication(SimpleJWTAuthentication):
    """simplejwt's, plus: an access token issued before the user's last password change is refused, and
    so is one of a session that was logged out (accounts.tokens). The websocket authentication uses it too.

    A changed password is often a reaction to a leak; refresh tokens are blacklisted then, and this
    ends the access tokens too instead of letting them live out their (short) lifetime.
    """

    def get_user(self, validated_token):
        if session_is_revoked(validated_token):
            raise InvalidToken(SESSION_ENDED)
        user = super().get_user(validated_token)
        changed = user.password_changed_at
        # iat has whole seconds: a token issued in the second of the change is still accepted.
        if changed is not None and validated_token.get("iat", 0) < int(changed.timestamp()):
            raise InvalidToken("The token was issued before the password was changed.")
        return user


class JWTAuthenticationScheme(SimpleJWTScheme):
    """The OpenAPI security scheme of our JWTAuthentication: simplejwt's own (its extension matches
    only simplejwt's class)."""

    target_class = "accounts.api.authentication.JWTAuthentication"
