"""The fitfleet Keras callbacks: position tracking, metric recording, resume, checkpoints.

Each is one small class with one concern. Failures of side channels (the database, the
object store) are logged and retried; they never kill training.
"""

from __future__ import annotations

import logging
import math
import sys
import threading
import time
from dataclasses import dataclass

import keras

from service.core.errors import FitfleetError, Unavailable
from workers import telemetry
from workers.training.resume import checkpoint, state

log = logging.getLogger("fitfleet.worker")


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
        return {"epoch": self.epoch, "batch": self.batch, "step": self.step,
                "steps_per_epoch": self.steps_per_epoch}


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


class Handover(keras.callbacks.Callback):
    """Carries the user callbacks' state from one ``fit`` call of an attempt to the next.

    Placed before the user callbacks: at the end of a call that is not the attempt's last,
    it captures their state for :class:`Resume` and keeps EarlyStopping from restoring its
    best weights, which an uninterrupted run does only once, at the very end.
    """

    def __init__(self, user_callbacks, resume: Resume):
        super().__init__()
        self.user_callbacks, self.resume = user_callbacks, resume
        self.final = True  # set by the caller before each fit call

    def on_train_end(self, logs=None):
        if self.final or self.model.stop_training:
            return
        self.resume.callback_state = state.capture_callbacks(self.user_callbacks)
        state.stash_best_weights(self.user_callbacks)


def _floats(logs) -> dict:
    """The logs' numeric values as floats; NaN and +/-inf included (the store encodes them)."""
    out = {}
    for k, v in (logs or {}).items():
        try:
            out[k] = float(v)
        except (TypeError, ValueError):
            continue
    return out


def _transient(exc: BaseException) -> bool:
    """Whether a failed write may succeed as it is later (the database was unreachable)."""
    from sqlalchemy import exc as sa

    if isinstance(exc, (Unavailable, sa.OperationalError, sa.InterfaceError, sa.TimeoutError)):
        return True
    return isinstance(exc, sa.DBAPIError) and exc.connection_invalidated


def _why(exc: BaseException) -> str:
    """A short reason safe to show on the job: the error's class, never its SQL or values."""
    cause = getattr(exc, "orig", None) or exc.__cause__ or exc
    return type(cause).__name__


class MetricsRecorder(keras.callbacks.Callback):
    """Buffers every batch's and epoch's logs; a background thread writes them in bulk.

    Rows are keyed by global step, so a replayed step overwrites its row (exactly once).
    A bulk write the database refuses is split in halves until the rows it refuses are
    isolated; those are set aside (logged, and counted on the job as ``metrics.rows_rejected``)
    and the others stored, so one bad row never holds back the rows or checkpoints after
    it. Only an unreachable database keeps rows for the next try. If rows are still
    unwritten when :meth:`close` gives up, the job fails with ``metrics_lost``.

    Example:
        recorder = MetricsRecorder(MetricStore(url), job_id, attempt=2, position=pos)
        model.fit(..., callbacks=[tracker, recorder])
        recorder.close()  # final flush
    """

    def __init__(self, store, job_id: str, attempt: int, position: Position,
                 flush_seconds: float = 1.0):
        super().__init__()
        self.store, self.job_id, self.attempt, self.pos = store, job_id, attempt, position
        self.flush_seconds = flush_seconds
        self._rows: list[dict] = []
        self._lock = threading.Lock()  # guards the buffer
        self._writing = threading.Lock()  # one bulk write at a time, in order
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="metrics-writer", daemon=True)
        self._thread.start()
        self.written = 0
        self.rejected = 0

    def on_train_batch_end(self, batch, logs=None):
        self._add("batch", self.pos.step, self.pos.epoch, self.pos.batch - 1, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.pos.halted:
            return
        self._add("epoch", (epoch + 1) * self.pos.steps_per_epoch, epoch, None, logs)

    def _add(self, kind, step, epoch, batch, logs):
        row = {"kind": kind, "step": step, "epoch": epoch, "batch": batch,
               "attempt": self.attempt, "logs": _floats(logs), "wall_time": time.time()}
        with self._lock:
            self._rows.append(row)

    def _loop(self):
        while not self._stop.wait(self.flush_seconds):
            self.flush()

    def flush(self) -> bool:
        """Write what is buffered; rows the database refuses are set aside, and while it is
        unreachable the rest are kept for the next try.

        When it returns True, every row added before the call is stored or set aside. The
        saver relies on that: a checkpoint commits only after its steps' rows are handled.
        """
        with self._writing:
            with self._lock:
                rows, self._rows = self._rows, []
            if not rows:
                return True
            refused: list[tuple[dict, str]] = []
            left = self._write(rows, refused)
            if refused:
                self._set_aside(refused)
            if left:
                with self._lock:
                    self._rows = left + self._rows
                return False
            return True

    def _write(self, rows: list[dict], refused: list) -> list[dict]:
        """Store ``rows``, isolating refused ones into ``refused``; returns the rows left."""
        try:
            self.written += self.store.write(self.job_id, rows)
            telemetry.rows_written(len(rows))
            return []
        except Exception as exc:  # sorted below: retry later or isolate
            if _transient(exc):
                log.warning("metric write failed (%s); %d rows kept for retry", exc, len(rows))
                return rows
            if len(rows) == 1:
                log.debug("metric row refused", exc_info=True)
                refused.append((rows[0], _why(exc)))
                return []
        half = len(rows) // 2
        left = self._write(rows[:half], refused)
        return left + rows[half:] if left else self._write(rows[half:], refused)

    def _set_aside(self, refused: list[tuple[dict, str]]) -> None:
        """Count refused rows on the job; if even that fails, the log has them."""
        self.rejected += len(refused)
        last, why = refused[-1]
        reason = (f"{len(refused)} metric row(s) refused by the database ({why}), the last "
                  f"one the {last['kind']} row at step {last['step']}")
        log.warning("job %s: %s; set aside, the others stored", self.job_id, reason)
        try:
            self.store.reject(self.job_id, [r for r, _ in refused], reason)
        except Exception:  # a side channel: training goes on
            log.warning("job %s: could not count %d refused metric rows", self.job_id,
                        len(refused), exc_info=True)

    def close(self, timeout: float = 120.0) -> bool:
        """Stop the writer and flush everything, retrying until ``timeout``.

        Rows still unwritten after a positive ``timeout`` raise ``metrics_lost`` (so the
        job cannot end ``succeeded`` with a hole in its history), unless another error is
        already on its way out; ``timeout=0`` (an attempt that lost the job) returns False.
        """
        self._stop.set()
        self._thread.join()
        deadline = time.monotonic() + timeout
        while not self.flush():
            if time.monotonic() > deadline:
                return self._gave_up(timeout)
            time.sleep(max(0.01, min(1.0, deadline - time.monotonic())))
        return True

    def _gave_up(self, timeout: float) -> bool:
        with self._lock:
            n = len(self._rows)
        log.error("job %s: %d metric rows not written: the database stayed unreachable",
                  self.job_id, n)
        if timeout > 0 and sys.exc_info()[0] is None:
            raise FitfleetError(
                f"{n} metric row(s) could not be written before the job ended (the database "
                f"was unreachable for {timeout:g} s); resubmit the job for a complete "
                "metric history", code="metrics_lost")
        return False


class Resume(keras.callbacks.Callback):
    """Puts back what ``fit`` resets: callback counters after ``on_train_begin``, and the
    metric variables at the start of an interrupted epoch."""

    def __init__(self, user_callbacks):
        super().__init__()
        self.user_callbacks = user_callbacks
        self.callback_state: list[dict] | None = None
        self.metric_arrays: dict | None = None

    def on_train_begin(self, logs=None):
        state.restore_callbacks(self.user_callbacks, self.callback_state)
        self.callback_state = None

    def on_epoch_begin(self, epoch, logs=None):
        if self.metric_arrays is not None:
            state.restore_metrics(self.model, self.metric_arrays)
            self.metric_arrays = None


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
        self._before_validation = (state.capture_metrics(self.model),
                                   self.model.get_metrics_result())

    def on_epoch_end(self, epoch, logs=None):
        if self.pos.halted:
            return
        if self._due or self.every_epoch or self._is_due():
            self.save(logs)

    def save(self, logs) -> None:
        if self.pos.step == self._last_step:
            return
        epoch, batch = divmod(self.pos.step, self.pos.steps_per_epoch)
        self._submit(checkpoint.take(self.model, step=self.pos.step, epoch=epoch, batch=batch,
                                     callbacks=self.user_callbacks, logs=logs))

    def save_before_validation(self) -> None:
        """During validation: the state after the epoch's last batch, marked not validated.

        The weights, optimizer, seed generators and callbacks are as the last batch left
        them (validation changes none of them); the metric variables are those kept in
        ``on_test_begin``. A resume from it redoes the validation pass.
        """
        if self.pos.step == self._last_step or self._before_validation is None:
            return
        metrics, logs = self._before_validation
        self._submit(checkpoint.take(
            self.model, step=self.pos.step, epoch=self.pos.epoch, batch=self.pos.batch,
            callbacks=self.user_callbacks, logs=logs, metric_arrays=metrics))

    def _submit(self, snap) -> None:
        self.saver.submit(snap)
        self._last_step = self.pos.step
        self._last_time = time.monotonic()
        self._due = False
        self.now_requested.clear()
