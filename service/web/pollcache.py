"""A small in-process cache of metric poll answers, keyed by the job and the answer's ETag.

Many dashboards polling one job ask the same question between two metric writes; the
ETag names the series version and the question, so an answer computed once serves them
all until the next write changes the version. Bounded in entries and in bytes.
"""

from __future__ import annotations

import threading
from collections import OrderedDict


class PollCache:
    """A thread-safe LRU of response bodies.

    Example:
        cache = PollCache(max_entries=256, max_bytes=32 << 20)
        body = cache.get_or_compute(key, compute)
    """

    def __init__(self, max_entries: int = 256, max_bytes: int = 32 << 20,
                 max_item_bytes: int = 2 << 20):
        self.max_entries, self.max_bytes, self.max_item = max_entries, max_bytes, max_item_bytes
        self._items: OrderedDict[tuple, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._flights: dict[tuple, threading.Event] = {}
        self.hits = self.misses = 0

    def get(self, key: tuple) -> bytes | None:
        with self._lock:
            body = self._items.get(key)
            if body is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return body

    def get_or_compute(self, key: tuple, compute) -> bytes:
        """The cached body, or ``compute()``'s; concurrent callers of one key compute once."""
        body = self.get(key)
        if body is not None:
            return body
        with self._lock:
            flight = self._flights.get(key)
            leader = flight is None
            if leader:
                flight = self._flights[key] = threading.Event()
        if not leader:
            flight.wait(30)
            body = self.get(key)
            if body is not None:
                return body
            return compute()  # the leader failed or its answer was too large to keep
        try:
            return self.put(key, compute())
        finally:
            with self._lock:
                self._flights.pop(key, None)
            flight.set()

    def put(self, key: tuple, body: bytes) -> bytes:
        """Keep ``body`` (unless it is too large) and return it."""
        if len(body) > self.max_item:
            return body
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= len(old)
            self._items[key] = body
            self._bytes += len(body)
            while self._items and (len(self._items) > self.max_entries
                                   or self._bytes > self.max_bytes):
                _, dropped = self._items.popitem(last=False)
                self._bytes -= len(dropped)
        return body

    def __len__(self) -> int:
        return len(self._items)
