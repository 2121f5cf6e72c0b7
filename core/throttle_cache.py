"""The embedded mode's store for throttle counts: process memory that never evicts a live entry.

Django's LocMemCache makes room by dropping entries, live or not (a third of them once it holds
MAX_ENTRIES, 300 by default). For throttle counts that means a client can reset its own budget, or
someone else's, just by making other keys: in a test, another user's webhook deliveries did. This
store only ever drops entries that have expired.

Memory: one entry per client (address, user, API key, workflow, webhook) seen within its rate's
period, holding at most that rate's number of timestamps: about 200 bytes, plus 8 per request
counted. Expired entries are dropped whenever the store reaches MAX_ENTRIES; if most are live, the
store grows rather than forget a count, and looks again only once it has doubled (so a write stays
cheap). Beyond a few hundred thousand clients an hour, use the distributed mode (Redis).
"""

import time

from django.core.cache.backends.locmem import LocMemCache

# How far each store (by LOCATION) has grown past its MAX_ENTRIES. Shared like LocMemCache's own
# dicts: every thread has its own cache object, and each would otherwise scan a full store again.
_grown_max_entries: dict[str, int] = {}


class ThrottleMemoryCache(LocMemCache):
    def __init__(self, name, params):
        super().__init__(name, params)
        self._name = name

    @property
    def _max_entries(self) -> int:
        return _grown_max_entries.get(self._name, self._configured_max_entries)

    @_max_entries.setter
    def _max_entries(self, value: int) -> None:  # BaseCache sets it from MAX_ENTRIES
        self._configured_max_entries = value

    def _cull(self) -> None:
        # Called by LocMemCache._set, under the store's lock, when it holds _max_entries.
        now = time.time()
        expired = [key for key, expiry in self._expire_info.items() if expiry is not None and expiry <= now]
        for key in expired:
            self._delete(key)
        _grown_max_entries[self._name] = max(self._configured_max_entries, 2 * len(self._cache))
