"""A two-level cache for values whose key names everything they were made from (a digest of their
rows, e.g. those of workflows.fingerprints): such an entry is never stale, since a change is
a new key, so nothing here is ever invalidated; old entries just stop being asked for.

Level 1 is this process's memory: a least-recently-used map of at most DWC_CONTENT_CACHE_ENTRIES
entries per cache, each a value the caller must not change. Level 2 is the "default" cache (Redis in
the distributed mode, shared by every process; this process's memory in the embedded one), kept for
DWC_CONTENT_CACHE_SECONDS, so a restarted or new process starts warm. A read that misses both makes
the value and writes both.

A key also carries the cache's `namespace`: what the values were made by (the code and settings that
shape them), so that a deploy which changes those reads none of the entries the old code wrote.
"""

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from django.conf import settings
from django.core.cache import caches


class ContentCache:
    def __init__(self, name: str, namespace: Callable[[], str]):
        self.name = name
        self._namespace = namespace  # called once, at the first use: settings are ready by then
        self._prefix: str | None = None
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()  # gunicorn's gthread workers serve requests on several threads

    def get_many(self, keys: list[str]) -> dict[str, Any]:
        """The values cached under `keys` (those missing are left out)."""
        found, missing = {}, []
        with self._lock:
            for key in keys:
                if key in self._entries:
                    self._entries.move_to_end(key)
                    found[key] = self._entries[key]
                else:
                    missing.append(key)
        if missing:
            shared_keys = {key: self._shared_key(key) for key in missing}
            shared = caches["default"].get_many(list(shared_keys.values()))
            for key, shared_key in shared_keys.items():
                value = shared.get(shared_key)
                if value is not None:
                    found[key] = value
                    self._remember(key, value)
        return found

    def get(self, key: str) -> Any | None:
        return self.get_many([key]).get(key)

    def set_many(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            self._remember(key, value)
        caches["default"].set_many(
            {self._shared_key(key): value for key, value in values.items()}, settings.DWC_CONTENT_CACHE_SECONDS
        )

    def set(self, key: str, value: Any) -> None:
        self.set_many({key: value})

    def clear_local(self) -> None:
        """Forget level 1 (the shared level keeps its entries): what a new process starts with."""
        with self._lock:
            self._entries.clear()

    def _remember(self, key: str, value: Any) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > settings.DWC_CONTENT_CACHE_ENTRIES:
                self._entries.popitem(last=False)

    def _shared_key(self, key: str) -> str:
        if self._prefix is None:
            self._prefix = f"content:{self.name}:{self._namespace()}:"
        return self._prefix + key
