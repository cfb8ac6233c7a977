"""A small in-process cache of metric poll answers: one computation per question and version.

Many dashboards polling one job ask the same question between two metric writes. An
answer is kept under its question (the job and the query string) with the ETag it was
computed for (the series version and the question). While one thread computes the answer
for a new version, the others asking the same question get the previous answer at once,
with its own ETag, and see the new one at their next poll. Bounded in entries and bytes.
"""

from __future__ import annotations

import threading
from collections import OrderedDict


class PollCache:
    """A thread-safe LRU of ``question -> (etag, body)``.

    Example:
        cache = PollCache(max_entries=256, max_bytes=32 << 20)
        etag, body = cache.answer((job_id, query), etag_now, compute)
    """

    def __init__(
        self, max_entries: int = 256, max_bytes: int = 32 << 20, max_item_bytes: int = 2 << 20
    ):
        self.max_entries, self.max_bytes, self.max_item = max_entries, max_bytes, max_item_bytes
        self._items: OrderedDict[tuple, tuple[str, bytes]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._flights: dict[tuple, threading.Event] = {}
        self.hits = self.misses = self.stale = 0

    def answer(self, question: tuple, etag: str, compute) -> tuple[str, bytes]:
        """``(etag, body)``: the cached answer for ``etag``, else ``compute()``'s; while
        another thread computes it, the previous answer if there is one."""
        with self._lock:
            have = self._items.get(question)
            if have is not None and have[0] == etag:
                self._items.move_to_end(question)
                self.hits += 1
                return have
            flight = self._flights.get(question)
            if flight is not None and have is not None:
                self.stale += 1
                return have
            leader = flight is None
            if leader:
                flight = self._flights[question] = threading.Event()
            self.misses += 1
        if not leader:  # nothing older to give: wait for the one computing it
            flight.wait(30)
            with self._lock:
                have = self._items.get(question)
            return have if have is not None and have[0] == etag else (etag, compute())
        try:
            body = compute()
            self._keep(question, etag, body)
            return etag, body
        finally:
            with self._lock:
                self._flights.pop(question, None)
            flight.set()

    def _keep(self, question: tuple, etag: str, body: bytes) -> None:
        if len(body) > self.max_item:
            return
        with self._lock:
            old = self._items.pop(question, None)
            if old is not None:
                self._bytes -= len(old[1])
            self._items[question] = (etag, body)
            self._bytes += len(body)
            while self._items and (
                len(self._items) > self.max_entries or self._bytes > self.max_bytes
            ):
                _, dropped = self._items.popitem(last=False)
                self._bytes -= len(dropped[1])

    def __len__(self) -> int:
        return len(self._items)
