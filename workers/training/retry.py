"""Retrying a side-channel write (database, object store) with backoff, within a budget."""

from __future__ import annotations

import logging
import time

from service.core.errors import LeaseLost

log = logging.getLogger("fitfleet.worker")


def retry(fn, what: str, budget: float = 120.0, first_delay: float = 0.5, max_delay: float = 10.0):
    """Call ``fn`` until it succeeds or ``budget`` seconds have passed (then re-raise).

    ``LeaseLost`` is never retried: a fenced write that was refused stays refused.
    """
    deadline = time.monotonic() + budget
    delay = first_delay
    while True:
        try:
            return fn()
        except LeaseLost:
            raise
        except Exception as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("%s failed (%s); retrying in %.1fs", what, exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, max_delay)
