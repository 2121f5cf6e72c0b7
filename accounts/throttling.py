"""The throttles that count people and their credentials: logins per client address, and authenticated
traffic per user or API key. Rates and the store they count in: core.throttling."""

from rest_framework.authentication import SessionAuthentication

from accounts.models import ApiKey
from core.throttling import RateFromSettings, client_ip


class AuthRateThrottle(RateFromSettings):
    """Login, registration and token refresh: per client address, each endpoint counted apart."""

    scope = "auth"

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": f"{self.scope}.{type(view).__name__}", "ident": client_ip(request)}


class UserOrKeyRateThrottle(RateFromSettings):
    """Authenticated traffic: per API key when one is used (each key its own budget), else per user.

    A browser session (the dashboard; it also needs CSRF for writes) counts under the "session"
    scope: a person's pages read in bursts (a workflow list asks for each workflow's last run) that
    the per-user API budget of scripts and integrations is not sized for.
    """

    scope = "user"
    scopes = ("user", "session")

    def allow_request(self, request, view) -> bool:
        self.scope = "session" if isinstance(request.successful_authenticator, SessionAuthentication) else "user"
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request, view) -> str | None:
        if isinstance(request.auth, ApiKey):
            ident = f"key.{request.auth.pk}"
        elif request.user is not None and request.user.is_authenticated:
            ident = f"user.{request.user.pk}"
        else:
            return None
        return self.cache_format % {"scope": self.scope, "ident": ident}
