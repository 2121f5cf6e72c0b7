"""Request rates, counted in the "throttles" cache: Redis in the distributed mode, so all processes share
them, and in the embedded mode a memory store of its own that never evicts a live count (other keys
could otherwise push a client's count out and reset its budget).

Rates come from REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] (env DWC_THROTTLE_*), read on every request:
DRF's own classes copy them once at import, which settings changed later would never reach.
"""

import uuid

from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.utils.connection import ConnectionProxy
from rest_framework.authentication import SessionAuthentication
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

from accounts.models import ApiKey

# Looked up on each use, like django.core.cache.cache: settings changed later (tests) take effect.
throttle_cache = ConnectionProxy(caches, "throttles")


def client_ip(request) -> str:
    """The client's address as DRF's throttles see it: REMOTE_ADDR, or with NUM_PROXIES = n the
    address in X-Forwarded-For that the outermost of our n proxies received from."""
    return BaseThrottle().get_ident(request) or ""


class _RateFromSettings(SimpleRateThrottle):
    cache = throttle_cache

    def get_rate(self) -> str:
        try:
            return api_settings.DEFAULT_THROTTLE_RATES[self.scope]
        except KeyError as error:
            raise ImproperlyConfigured(
                f"No throttle rate for scope {self.scope!r} in DEFAULT_THROTTLE_RATES."
            ) from error


class AuthRateThrottle(_RateFromSettings):
    """Login, registration and token refresh: per client address, each endpoint counted apart."""

    scope = "auth"

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": f"{self.scope}.{type(view).__name__}", "ident": client_ip(request)}


class UserOrKeyRateThrottle(_RateFromSettings):
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


class WorkflowTriggerThrottle(_RateFromSettings):
    """Runs started per workflow, whoever starts them: on the views and actions marked `starts_runs`."""

    scope = "trigger"

    def get_cache_key(self, request, view) -> str | None:
        if request.method != "POST" or not getattr(view, "starts_runs", False):
            return None
        workflow_id = getattr(view, "kwargs", {}).get("pk")
        if workflow_id is None and isinstance(request.data, dict):
            workflow_id = request.data.get("workflow_id")  # POST /api/v3/trigger names it in the body
        try:
            workflow_id = uuid.UUID(str(workflow_id))
        except ValueError:
            return None  # the view answers 400 or 404 for it
        return self.cache_format % {"scope": self.scope, "ident": workflow_id}
