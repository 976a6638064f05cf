"""A bounded cache of search answers keyed by the query image's content hash.

Writes bump a generation number and clear the cache; an answer computed under an older
generation is never stored, so a search racing a write cannot put a stale answer back.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from typing import Any, Mapping

__all__ = ["QueryCache", "query_key"]


def query_key(image: bytes, top_k: int, where: Mapping[str, Any] | None, rerank: bool | None) -> str:
    """Cache key: SHA-256 of the image bytes plus the search parameters (canonical JSON)."""
    params = json.dumps([top_k, where, rerank], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(image).hexdigest() + ":" + params


class QueryCache:
    """Least-recently-used map of query keys to JSON answers, at most ``capacity`` entries.

    Parameters
    ----------
    capacity : int
        Entries kept; 0 disables the cache.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = int(capacity)
        self._entries: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._generation = 0
        self.hits = 0
        self.misses = 0

    @property
    def generation(self) -> int:
        """Bumped by every :meth:`invalidate`."""
        return self._generation

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> dict[str, Any] | None:
        """The cached answer, or None (counts a hit or a miss)."""
        with self._lock:
            value = self._entries.get(key)
            if value is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: str, value: dict[str, Any], generation: int) -> bool:
        """Store ``value`` if no write happened since ``generation`` was read; True if stored."""
        if self.capacity == 0:
            return False
        with self._lock:
            if generation != self._generation:
                return False
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
            return True

    def invalidate(self) -> None:
        """Forget everything (called by every write)."""
        with self._lock:
            self._generation += 1
            self._entries.clear()
