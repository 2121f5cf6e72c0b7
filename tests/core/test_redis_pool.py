"""The Redis caches' connection pool (core.redis_pool): one per process, whichever thread or request
asks. Django makes a cache object per thread and async context, each with pools of its own."""

import asyncio
import threading

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core.cache import caches


def _pool(alias: str = "default"):
    return caches[alias]._cache.get_client(write=True).connection_pool


def test_cache_objects_of_different_threads_share_one_connection_pool():
    pools = []
    threads = [threading.Thread(target=lambda: pools.append(_pool())) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(pool) for pool in [*pools, _pool()]}) == 1


def test_requests_under_asgi_share_it_too():
    """Each ASGI request is a context of its own, with a thread of its own for its synchronous code;
    an event loop in a new thread starts from an empty context, as daphne's does."""

    async def one_request():
        async with ThreadSensitiveContext():  # as django.core.handlers.asgi does per request
            return await sync_to_async(_pool)()

    pools = []
    for _ in range(2):
        loop = threading.Thread(target=lambda: pools.append(asyncio.run(one_request())))
        loop.start()
        loop.join()
    assert pools[0] is pools[1] is _pool()


def test_the_throttles_and_the_default_cache_on_one_server_share_it():
    assert _pool("throttles") is _pool("default")


def test_a_pooled_connection_the_server_closed_is_replaced():
    cache = caches["default"]
    cache.set("redis-pool-test", 1)
    client = cache._cache.get_client(write=True)
    client.client_kill_filter(_id=client.client_id())  # Redis drops this thread's pooled connection
    cache.set("redis-pool-test", 2)
    assert cache.get("redis-pool-test") == 2
