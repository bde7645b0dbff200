"""A bounded cache of downsampled histories, each kept with the token it was computed under.

A run only grows (a resumed attempt logs into a run of its own, server.attempts), so a history
stays valid while the token a store reads cheaply for it (the key's last point) is unchanged.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

ENTRIES = 512  # downsampled histories (about 1,000 points each) kept


class HistoryCache:
    """Least recently used first out; safe to share between threads."""

    def __init__(self, entries: int = ENTRIES) -> None:
        self.entries = entries
        self._lock = threading.Lock()
        self._items: OrderedDict[Hashable, tuple[Hashable, Any]] = OrderedDict()

    def get(self, key: Hashable, token: Hashable) -> Any | None:
        """The value stored for `key` under this `token`; None when absent or stale."""
        with self._lock:
            hit = self._items.get(key)
            if hit is None or hit[0] != token:
                return None
            self._items.move_to_end(key)
            return hit[1]

    def put(self, key: Hashable, token: Hashable, value: Any) -> None:
        with self._lock:
            self._items[key] = (token, value)
            self._items.move_to_end(key)
            while len(self._items) > self.entries:
                self._items.popitem(last=False)
