"""The checkpointer: snapshots at the job's cadence, handed to the background saver."""

from __future__ import annotations

import threading
import time

import keras

from workers.training.callbacks.position import Position
from workers.training.resume import checkpoint, state


class Checkpointer(keras.callbacks.Callback):
    """Takes snapshots at the job's cadence and hands them to the background saver.

    A checkpoint at an epoch boundary is taken in ``on_epoch_end``, after validation and
    after the user's callbacks saw the epoch, so that resuming from it skips nothing. A stop
    during validation takes :meth:`save_before_validation` instead.
    """

    def __init__(self, saver, position: Position, user_callbacks, cadence: dict):
        super().__init__()
        self.saver, self.pos, self.user_callbacks = saver, position, user_callbacks
        self.every_epoch = bool(cadence.get("every_epoch"))
        self.every_n = cadence.get("every_n_batches") or 0
        self.every_s = cadence.get("every_seconds") or 0
        self._last_time = time.monotonic()
        self._last_step = -1
        self._due = False
        self._before_validation = None
        self.now_requested = threading.Event()

    def _is_due(self) -> bool:
        if self.now_requested.is_set():
            return True
        if self.every_n and self.pos.step % self.every_n == 0:
            return True
        return bool(self.every_s and time.monotonic() - self._last_time >= self.every_s)

    def on_train_batch_end(self, batch, logs=None):
        if self._is_due():
            if self.pos.at_epoch_boundary():
                self._due = True  # the epoch's end is next: validation first
            else:
                self.save(logs)

    def on_test_begin(self, logs=None):
        # evaluate resets the metrics next: keep the training ones of the epoch's end
        self._before_validation = (
            state.capture_metrics(self.model),
            self.model.get_metrics_result(),
        )

    def on_epoch_end(self, epoch, logs=None):
        if self.pos.halted:
            return
        if self._due or self.every_epoch or self._is_due():
            self.save(logs)

    def save(self, logs) -> None:
        if self.pos.step == self._last_step:
            return
        epoch, batch = divmod(self.pos.step, self.pos.steps_per_epoch)
        self._submit(
            lambda: checkpoint.take(
                self.model,
                step=self.pos.step,
                epoch=epoch,
                batch=batch,
                callbacks=self.user_callbacks,
                logs=logs,
            )
        )

    def save_before_validation(self) -> None:
        """During validation: the state after the epoch's last batch, marked not validated.

        The weights, optimizer, seed generators and callbacks are as the last batch left
        them (validation changes none of them); the metric variables are those kept in
        ``on_test_begin``. A resume from it redoes the validation pass.
        """
        if self.pos.step == self._last_step or self._before_validation is None:
            return
        metrics, logs = self._before_validation
        self._submit(
            lambda: checkpoint.take(
                self.model,
                step=self.pos.step,
                epoch=self.pos.epoch,
                batch=self.pos.batch,
                callbacks=self.user_callbacks,
                logs=logs,
                metric_arrays=metrics,
            )
        )

    def _submit(self, take) -> None:
        self.saver.submit(take)  # takes the snapshot once the one before is written
        self._last_step = self.pos.step
        self._last_time = time.monotonic()
        self._due = False
        self.now_requested.clear()
