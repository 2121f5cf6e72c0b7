"""`X-API-Key: <key>`: the request acts as the key's creator, within the key's scopes and workspace."""

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed, PermissionDenied
from rest_framework_simplejwt.authentication import JWTAuthentication as SimpleJWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken
from rest_framework_simplejwt.settings import api_settings as jwt_settings

from accounts.api_keys import ApiKeyRejected, api_key_authenticate
from accounts.ip_allow_lists import IpNotAllowed
from accounts.login_sessions import SessionEnded, token_session_user
from core.throttling import client_ip

API_KEY_HEADER = "X-API-Key"


class AddressNotAllowed(PermissionDenied):
    """accounts.ip_allow_lists.IpNotAllowed as DRF's exception: raised while authenticating, only an
    APIException leaves the request anonymous (DRF re-authenticates on each read of `request.user` otherwise)."""

    def __init__(self, error: IpNotAllowed):
        super().__init__(str(error), code=error.code)
        self.problem_members = error.problem_members


class ApiKeyAuthentication(BaseAuthentication):
    """Sets `request.auth` to the ApiKey and `request.user.api_key` to it too, which is what
    accounts.access and ApiKeyScopePermission read. A wrong, revoked or expired key is a 401; a key
    whose IP allow-list refuses the client address (as the throttles see it) a 403."""

    def authenticate(self, request):
        raw_key = request.headers.get(API_KEY_HEADER, "").strip()
        if not raw_key:
            return None
        try:
            key = api_key_authenticate(raw_key=raw_key, address=client_ip(request))
        except ApiKeyRejected as error:
            raise AuthenticationFailed(str(error)) from error
        except IpNotAllowed as error:
            raise AddressNotAllowed(error) from error
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
    so is one of a login session that was ended (accounts.login_sessions). The websocket
    authentication uses it too.

    A changed password is often a reaction to a leak; refresh tokens are blacklisted then, and this
    ends the access tokens too instead of letting them live out their (short) lifetime.
    """

    request = None  # the request being authenticated, for the session's last use (address, agent)

    def authenticate(self, request):
        self.request = request
        return super().authenticate(request)

    def get_user(self, validated_token):
        try:
            user = token_session_user(validated_token, self.request)
        except SessionEnded as error:
            raise InvalidToken(str(error)) from error
        if user is None:  # a token without a login session: the user as simplejwt loads it
            user = super().get_user(validated_token)
        elif str(user.pk) != str(validated_token.get(jwt_settings.USER_ID_CLAIM)):
            raise InvalidToken("The token's login session belongs to another user.")
        elif jwt_settings.CHECK_USER_IS_ACTIVE and not user.is_active:  # as simplejwt's get_user
            raise AuthenticationFailed("User is inactive", code="user_inactive")
        changed = user.password_changed_at
        # iat has whole seconds: a token issued in the second of the change is still accepted.
        if changed is not None and validated_token.get("iat", 0) < int(changed.timestamp()):
            raise InvalidToken("The token was issued before the password was changed.")
        return user


class JWTAuthenticationScheme(SimpleJWTScheme):
    """The OpenAPI security scheme of our JWTAuthentication: simplejwt's own (its extension matches
    only simplejwt's class)."""

    target_class = "accounts.api.authentication.JWTAuthentication"
