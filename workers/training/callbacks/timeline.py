"""The timeline callback: the first batch trained and each validation pass, as job events."""

from __future__ import annotations

import time

import keras

from service.store import events
from workers.training.callbacks.position import Position


class Timeline(keras.callbacks.Callback):
    """Notes the first batch of an attempt and the length of each validation pass.

    The notes go to the attempt's :class:`workers.training.journal.Journal`, which writes
    them from its own thread; the training thread only reads a clock.
    """

    def __init__(self, journal, position: Position, started: float):
        """``started`` is the ``time.monotonic()`` of the claim."""
        super().__init__()
        self.journal, self.pos, self.started = journal, position, started
        self._first = True
        self._test_began: float | None = None

    def on_train_batch_end(self, batch, logs=None):
        if self._first:
            self._first = False
            seconds = round(time.monotonic() - self.started, 3)
            self.journal.note(events.FIRST_BATCH, {"step": self.pos.step, "seconds": seconds})

    def on_test_begin(self, logs=None):
        self._test_began = time.monotonic()

    def on_test_end(self, logs=None):
        if self._test_began is not None:
            seconds = round(time.monotonic() - self._test_began, 3)
            self.journal.note(events.VALIDATED, {"epoch": self.pos.epoch, "seconds": seconds})
            self._test_began = None
