"""`X-API-Key: <key>`: the request acts as the key's creator, within the key's scopes and workspace."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed

from accounts.api_keys import ApiKeyRejected, api_key_authenticate

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
