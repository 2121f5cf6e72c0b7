"""What an API key may reach by HTTP method and endpoint; accounts.access limits it further by role."""

from rest_framework.permissions import SAFE_METHODS, BasePermission

from accounts.models import ApiKey

Scope = ApiKey.Scope

SCOPE_MISSING = "This API key lacks the {scope} scope, which this request needs."
KEYS_REFUSED = "This endpoint does not accept API keys; log in instead."


def scope_needed(method: str, view) -> str:
    """read for safe methods; trigger for the endpoints that start runs (`starts_runs` on the view or
    its action); write for every other change. Admin operations are told by the role they need."""
    if method in SAFE_METHODS:
        return Scope.READ
    if getattr(view, "starts_runs", False):
        return Scope.TRIGGER
    return Scope.WRITE


class ApiKeyScopePermission(BasePermission):
    """Requests authenticated otherwise pass; API-key requests need the scope `scope_needed` names.
    Views that manage credentials themselves (`refuses_api_keys`) are closed to keys: a key must not
    mint more keys or change its user's password."""

    def has_permission(self, request, view) -> bool:
        key = request.auth
        if not isinstance(key, ApiKey):
            return True
        if getattr(view, "refuses_api_keys", False):
            self.message = KEYS_REFUSED
            return False
        scope = scope_needed(request.method, view)
        if key.allows(scope):
            return True
        self.message = SCOPE_MISSING.format(scope=scope)
        return False
