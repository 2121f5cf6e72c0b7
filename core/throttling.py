"""Request rates, counted in the "throttles" cache: Redis in the distributed mode, so all processes share
them, and in the embedded mode a memory store of its own that never evicts a live count (other keys
could otherwise push a client's count out and reset its budget).

Rates come from REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] (env DWC_THROTTLE_*), read on every request:
DRF's own classes copy them once at import, which settings changed later would never reach. The
throttles themselves live with what they count: accounts.throttling (logins, users and API keys),
workflows.api.throttling (runs started per workflow).
"""

from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest
from django.utils.connection import ConnectionProxy
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

# Looked up on each use, like django.core.cache.cache: settings changed later (tests) take effect.
throttle_cache = ConnectionProxy(caches, "throttles")


def client_ip(request: HttpRequest | Request) -> str:
    """The client's address as DRF's throttles see it: REMOTE_ADDR, or with NUM_PROXIES = n the
    address in X-Forwarded-For that the outermost of our n proxies received from."""
    return BaseThrottle().get_ident(request) or ""


class RateFromSettings(SimpleRateThrottle):
    """A throttle counted in the "throttles" cache at its scope's current rate from settings."""

    cache = throttle_cache

    def get_rate(self) -> str:
        try:
            return api_settings.DEFAULT_THROTTLE_RATES[self.scope]
        except KeyError as error:
            raise ImproperlyConfigured(
                f"No throttle rate for scope {self.scope!r} in DEFAULT_THROTTLE_RATES."
            ) from error
