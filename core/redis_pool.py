"""One Redis connection pool per process and server for the cache backends (CACHES' `pool_class`).

Django keeps a cache object per thread and async context (django.core.cache.caches), and each of its
RedisCache objects makes pools of its own. Whether ASGI requests then share a connection depends on
how asgiref hands contexts to the requests' threads: driven in process (asyncio.run over
config.asgi.application) every webhook delivery connected to Redis anew, a TCP connect and a
handshake; under `manage.py serve` they happened to share. redis-py's pools are thread-safe and
start afresh in a forked child, so one per process serves every request, whatever the context.
"""

import threading

from redis import ConnectionPool

_pools: dict[tuple, ConnectionPool] = {}
_lock = threading.Lock()


class ProcessConnectionPool(ConnectionPool):
    @classmethod
    def from_url(cls, url: str, **kwargs) -> ConnectionPool:
        key = (cls, url, tuple(sorted((name, repr(value)) for name, value in kwargs.items())))
        with _lock:
            pool = _pools.get(key)
            if pool is None:
                pool = _pools[key] = super().from_url(url, **kwargs)
        return pool
