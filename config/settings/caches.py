"""The caches (throttle counts among them) and the channel layer: inside this process in the embedded
mode, in the Redis of REDIS_URL in the distributed one."""

import os

from config.settings.environment import REDIS_URL

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "dwc",
            # One pool per process (core.redis_pool): Django's are per cache object, which is per
            # thread and async context.
            "OPTIONS": {
                "socket_connect_timeout": 2,
                "socket_timeout": 2,
                "pool_class": "core.redis_pool.ProcessConnectionPool",
            },
        }
    }
    # Throttle counts (core.throttling) in the same Redis, which must not evict them: run it with
    # maxmemory-policy noeviction (its default) or without maxmemory. /ready reports one that evicts.
    # Login lockouts are in the database, in every mode.
    CACHES["throttles"] = CACHES["default"]
    # The pub/sub layer: one Redis connection per process whatever the number of clients, and a
    # group message is one PUBLISH (the default layer, measured at 100 clients in one daphne,
    # failed with "Too many connections"). Run events are fire-and-forget here: RunEvent is the
    # record, and clients resume from it.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": "dwc-asgi"},
        }
    }
else:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        # Apart from the default cache, which drops entries to make room: a store that never drops a
        # live count (its memory bound is in core/throttle_cache.py).
        "throttles": {
            "BACKEND": "core.throttle_cache.ThrottleMemoryCache",
            "LOCATION": "throttles",
            "OPTIONS": {"MAX_ENTRIES": 10_000},
        },
    }
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Answers cached under a digest of what they were made from (core.content_cache: the displays of
# workflows.api.displays under the digests of workflows.fingerprints): per process, the most recently used this many per
# kind, and in the default cache for this long. They never need invalidating; these bound memory only.
DWC_CONTENT_CACHE_ENTRIES = int(os.environ.get("DWC_CONTENT_CACHE_ENTRIES", "2000"))
DWC_CONTENT_CACHE_SECONDS = int(os.environ.get("DWC_CONTENT_CACHE_SECONDS", str(24 * 3600)))
