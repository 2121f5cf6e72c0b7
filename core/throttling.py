"""Request rates, counted in the "throttles" cache: Redis in the distributed mode, so all processes share
them, and in the embedded mode a memory store of its own that never evicts a live count (other keys
could otherwise push a client's count out and reset its budget).

Rates come from REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] (env DWC_THROTTLE_*), read on every request:
DRF's own classes copy them once at import, which settings changed later would never reach. The
throttles themselves live with what they count: accounts.throttling (logins, users and API keys),
workflows.api.throttling (runs started per workflow).

What is counted is DRF's: the requests allowed within the last period (a sliding log), so a rate
changed meanwhile applies to the requests already made. How it is counted differs in Redis: DRF keeps
the log as one pickled list, read and written whole on every request (two round trips and, at 1000/hour,
up to a thousand timestamps each way), and two processes reading it at once both let their request in.
Here the log is a sorted set that one Lua script trims, counts and appends to: one round trip, work
logarithmic in the rate, and no race. Other stores (the embedded mode's memory) keep DRF's list.
"""

import os
import time
import weakref

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest
from django.utils.connection import ConnectionProxy
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

# Looked up on each use, like django.core.cache.cache: settings changed later (tests) take effect.
throttle_cache = ConnectionProxy(caches, "throttles")

# KEYS[1]: the log. ARGV: now, period (seconds), rate, a member unique to this request.
# Returns nil when the request is let in (and logged), else the seconds until the oldest logged
# request leaves the period, as a string (Redis would truncate a Lua number to an integer).
_SLIDING_LOG = """
local log, now, period = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', log, '-inf', now - period)
if redis.call('ZCARD', log) >= tonumber(ARGV[3]) then
    local oldest = redis.call('ZRANGE', log, 0, 0, 'WITHSCORES')
    return tostring(tonumber(oldest[2]) + period - now)
end
redis.call('ZADD', log, now, ARGV[4])
redis.call('PEXPIRE', log, math.ceil(period * 1000))
return false
"""
# One Redis client per cache object (Django makes one per thread), on the pool Django keeps for it.
_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_scripts: list = []  # the script registered once; it runs by its SHA, sent whole only to a server new to it


def client_ip(request: HttpRequest | Request) -> str:
    """The client's address as DRF's throttles see it: REMOTE_ADDR, or with NUM_PROXIES = n the
    address in X-Forwarded-For that the outermost of our n proxies received from."""
    return BaseThrottle().get_ident(request) or ""


def sliding_log_hit(key: str, rate: int, period: float, now: float) -> float | None:
    """Count a request under `key` if fewer than `rate` were counted within `period` seconds before
    `now`: None if it was, else the seconds until one of those leaves the period."""
    store = caches["throttles"]
    if not isinstance(store, RedisCache):
        return _sliding_log_hit_in(store, key, rate, period, now)
    name = store.make_and_validate_key(f"log:{key}")  # not DRF's key: an older deploy left lists there
    client = _client(store, name)
    if not _scripts:
        _scripts.append(client.register_script(_SLIDING_LOG))
    wait = _scripts[0](keys=[name], args=[repr(now), repr(float(period)), rate, os.urandom(8).hex()], client=client)
    return None if wait is None else float(wait)


def window_hit(key: str, window: int, now: float) -> int:
    """Count a request under `key` in the fixed window of `window` seconds that `now` falls in, and
    return the window's count so far. In Redis one round trip (INCR, and EXPIRE on a new window's key,
    pipelined), where Django's add-then-incr took three (its incr asks whether the key exists first)."""
    store = caches["throttles"]
    name = f"window:{key}:{int(now // window)}"
    if not isinstance(store, RedisCache):
        if store.add(name, 1, timeout=2 * window):
            return 1
        try:
            return store.incr(name)
        except ValueError:  # expired between add and incr
            store.add(name, 1, timeout=2 * window)
            return 1
    name = store.make_and_validate_key(name)
    pipeline = _client(store, name).pipeline(transaction=False)
    pipeline.incr(name)
    pipeline.expire(name, 2 * window, nx=True)
    count, _ = pipeline.execute()
    return count


def _client(store: RedisCache, key: str):
    """The Redis client of this cache object, made once: Django's backend makes a new one (its parser
    and callbacks set up anew) on each call."""
    client = _clients.get(store)
    if client is None:
        client = _clients[store] = store._cache.get_client(key, write=True)
    return client


def _sliding_log_hit_in(store, key: str, rate: int, period: float, now: float) -> float | None:
    """DRF's way, in any Django cache: the log as a list, newest first."""
    log = [at for at in store.get(key, []) if at > now - period]
    if len(log) >= rate:
        return log[-1] + period - now
    store.set(key, [now, *log], period)
    return None


class RateFromSettings(SimpleRateThrottle):
    """A throttle counted in the "throttles" cache at its scope's current rate from settings."""

    cache = throttle_cache
    timer = time.time

    def get_rate(self) -> str:
        try:
            return api_settings.DEFAULT_THROTTLE_RATES[self.scope]
        except KeyError as error:
            raise ImproperlyConfigured(
                f"No throttle rate for scope {self.scope!r} in DEFAULT_THROTTLE_RATES."
            ) from error

    def allow_request(self, request, view) -> bool:
        self._wait = None
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self._wait = sliding_log_hit(self.key, self.num_requests, self.duration, self.timer())
        return self._wait is None

    def wait(self) -> float | None:
        return self._wait
