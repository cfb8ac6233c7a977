"""The metrics recorder: every batch's and epoch's logs, written in bulk by a thread."""

from __future__ import annotations

import logging
import sys
import threading
import time

import keras

from service.core.errors import FitfleetError, Unavailable
from workers import telemetry
from workers.training.callbacks.position import Position

log = logging.getLogger("fitfleet.worker")


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

    def __init__(
        self, store, job_id: str, attempt: int, position: Position, flush_seconds: float = 1.0
    ):
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

    def record_system(self, values: dict) -> None:
        """A sample of system metrics, as a ``system`` row at the current global step (two
        samples at one step keep the later)."""
        self._add("system", self.pos.step, self.pos.epoch, None, values)

    def _add(self, kind, step, epoch, batch, logs):
        row = {
            "kind": kind,
            "step": step,
            "epoch": epoch,
            "batch": batch,
            "attempt": self.attempt,
            "logs": _floats(logs),
            "wall_time": time.time(),
        }
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
        reason = (
            f"{len(refused)} metric row(s) refused by the database ({why}), the last "
            f"one the {last['kind']} row at step {last['step']}"
        )
        log.warning("job %s: %s; set aside, the others stored", self.job_id, reason)
        try:
            self.store.reject(self.job_id, [r for r, _ in refused], reason)
        except Exception:  # a side channel: training goes on
            log.warning(
                "job %s: could not count %d refused metric rows",
                self.job_id,
                len(refused),
                exc_info=True,
            )

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
        log.error(
            "job %s: %d metric rows not written: the database stayed unreachable", self.job_id, n
        )
        if timeout > 0 and sys.exc_info()[0] is None:
            raise FitfleetError(
                f"{n} metric row(s) could not be written before the job ended (the database "
                f"was unreachable for {timeout:g} s); resubmit the job for a complete "
                "metric history",
                code="metrics_lost",
            )
        return False
