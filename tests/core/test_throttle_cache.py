"""The embedded mode's throttle store: LocMemCache, except that making room never drops a live count."""

import time

import pytest
from django.core.cache.backends.locmem import LocMemCache

from core.throttle_cache import ThrottleMemoryCache


def stores(name: str, max_entries: int) -> tuple[LocMemCache, LocMemCache]:
    options = {"OPTIONS": {"MAX_ENTRIES": max_entries}}
    return LocMemCache(f"{name}-plain", options), ThrottleMemoryCache(f"{name}-throttles", options)


def test_a_full_store_keeps_every_live_entry_where_locmem_drops_a_third():
    plain, throttles = stores("full", 300)
    for store in (plain, throttles):
        for n in range(1_000):
            store.set(f"count:{n}", n, 60)
    assert sum(plain.get(f"count:{n}") is not None for n in range(1_000)) < 1_000
    assert [throttles.get(f"count:{n}") for n in range(1_000)] == list(range(1_000))


def test_making_room_drops_the_expired_entries(monkeypatch):
    _, throttles = stores("expired", 100)
    for n in range(100):
        throttles.set(f"old:{n}", n, 1)
    later = time.time() + 2
    monkeypatch.setattr(time, "time", lambda: later)
    throttles.set("new", 1, 60)  # the store is full: this write makes room
    assert len(throttles._cache) == 1
    assert throttles.get("new") == 1


@pytest.mark.parametrize("writes", [20_000])
def test_writes_stay_cheap_when_every_entry_is_live(writes):
    """A full store of live entries is scanned again only once it has doubled, not on every write."""
    _, throttles = stores("busy", 100)
    started = time.perf_counter()
    for n in range(writes):
        throttles.set(f"count:{n}", n, 60)
    assert time.perf_counter() - started < 5
    assert throttles.get("count:0") == 0
