"""Where training is, in global steps, kept by the first callback of an attempt."""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras


@dataclass
class Position:
    """Where training is: shared by the callbacks of one attempt."""

    steps_per_epoch: int
    epochs: int
    epoch: int = 0
    batch: int = 0  # batches done in the current epoch
    step: int = 0  # global batches done
    batch_offset: int = 0  # the first batch index of the current fit call's first epoch
    validation_abandoned: bool = False  # the current epoch's validation pass was cut short
    last_loss: float | None = None  # the loss of the newest batch
    nonfinite_since: int | None = None  # the step where the loss became NaN/inf, and stayed

    @property
    def halted(self) -> bool:
        """At an epoch's end: whether it is not a real one.

        It is not when fewer batches ran than an epoch has (training stopped inside it)
        or when its validation pass was abandoned.
        """
        return self.batch < self.steps_per_epoch or self.validation_abandoned

    def at_epoch_boundary(self) -> bool:
        return self.step % self.steps_per_epoch == 0

    def progress(self) -> dict:
        return {
            "epoch": self.epoch,
            "batch": self.batch,
            "step": self.step,
            "steps_per_epoch": self.steps_per_epoch,
        }


class Tracker(keras.callbacks.Callback):
    """Keeps :class:`Position` in terms of global steps (first in the callback list)."""

    def __init__(self, position: Position):
        super().__init__()
        self.pos = position
        self._offset = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.pos.epoch = epoch
        self._offset = self.pos.batch_offset
        self.pos.batch = self._offset
        self.pos.batch_offset = 0
        self.pos.validation_abandoned = False

    def on_train_batch_end(self, batch, logs=None):
        b = self._offset + batch + 1
        self.pos.batch = b
        self.pos.step = self.pos.epoch * self.pos.steps_per_epoch + b
        loss = (logs or {}).get("loss")
        if loss is not None:
            self.pos.last_loss = float(loss)
            if math.isfinite(self.pos.last_loss):
                self.pos.nonfinite_since = None
            elif self.pos.nonfinite_since is None:
                self.pos.nonfinite_since = self.pos.step
