"""The lease: a heartbeat thread that renews it, and a callback that acts on what it learns.

The thread renews the attempt's lease every few seconds with the current progress. The
answer says whether a cancel was asked for; a refusal means the attempt lost the job (a
reaper gave it to someone else), and training stops at once without writing anything.
A SIGTERM (preemption), or the scheduler's request that the job give way to one of
higher priority (``preempt`` in the renewal's answer, :mod:`service.store.scheduler`),
asks for a checkpoint now and a clean hand-back; only SIGTERM then stops the worker. During a
validation pass each of these abandons the pass at the next validation batch
(``model.stop_evaluating``) instead of waiting for its end; so does a stop inside an
epoch (TerminateOnNaN), whose validation would be of no use.
"""

from __future__ import annotations

import logging
import threading

import keras

from service.core.errors import LeaseLost
from workers import telemetry

log = logging.getLogger("fitfleet.worker")


class Heartbeat:
    """Renews the lease from a thread; exposes ``cancelled``, ``preempt`` and ``lost`` events."""

    def __init__(
        self, jobs, job_id: str, attempt_id: int, position, lease_seconds: float, interval: float
    ):
        self.jobs, self.job_id, self.attempt_id = jobs, job_id, attempt_id
        self.pos, self.lease_seconds, self.interval = position, lease_seconds, interval
        self.cancelled = threading.Event()
        self.preempt = threading.Event()  # the scheduler asked the job to give way
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        if not self._thread.is_alive() and not self._stop.is_set():
            self._thread.start()
        return self

    def beat(self) -> None:
        progress = self.pos.progress() if self.pos else None
        try:
            answer = self.jobs.renew_lease(
                self.job_id, self.attempt_id, self.lease_seconds, progress
            )
            if answer.cancel:
                self.cancelled.set()
            if answer.preempt and not self.preempt.is_set():
                log.info("job %s: asked to give way to a job of higher priority", self.job_id)
                self.preempt.set()
            telemetry.lease_renewed("ok")
        except LeaseLost:
            log.warning("job %s: lease lost; this attempt stops", self.job_id)
            telemetry.lease_renewed("lost")
            self.lost.set()
        except Exception as exc:  # noqa: BLE001 - database briefly away: keep training, retry
            telemetry.lease_renewed("error")
            log.warning("job %s: lease renewal failed (%s); retrying", self.job_id, exc)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()
            if self.lost.is_set():
                return

    def stop(self) -> None:
        """Stop renewing (idempotent); returns once no renewal is in progress."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)


class LeaseGuard(keras.callbacks.Callback):
    """Stops training on cancel, lost lease or preemption (last in the callback list)."""

    def __init__(self, heartbeat: Heartbeat, checkpointer, preempted: threading.Event, position):
        super().__init__()
        self.hb, self.checkpointer, self.preempted = heartbeat, checkpointer, preempted
        self.pos = position
        self.outcome: str | None = None

    def on_train_batch_end(self, batch, logs=None):
        self._check(logs, epoch_end=False)

    def on_test_batch_end(self, batch, logs=None):
        if self.outcome is None:
            outcome = self._asked()
            if outcome == "preempted":
                self.checkpointer.save_before_validation()
            if outcome is not None:
                self._stop(outcome)
        if self.outcome is not None or (self.model.stop_training and self.pos.halted):
            if not self.pos.validation_abandoned:
                log.info(
                    "validation of epoch %d abandoned after %d batches (%s)",
                    self.pos.epoch + 1,
                    batch + 1,
                    self.outcome or "training stopped",
                )
            self.pos.validation_abandoned = True  # its logs are partial: no epoch end
            self.model.stop_evaluating = True

    def on_epoch_end(self, epoch, logs=None):
        if not self.pos.halted:
            self._check(logs, epoch_end=True)

    def _asked(self) -> str | None:
        if self.hb.lost.is_set():
            return "lost"
        if self.hb.cancelled.is_set():
            return "cancelled"
        if self.preempted.is_set() or self.hb.preempt.is_set():
            return "preempted"
        return None

    def _check(self, logs, epoch_end: bool) -> None:
        outcome = self._asked()
        if outcome == "preempted":
            # At the last batch of an epoch, wait for validation: it stops at its first batch.
            if epoch_end or not self.pos.at_epoch_boundary():
                self.checkpointer.save(logs)
                self._stop(outcome)
        elif outcome is not None:
            self._stop(outcome)

    def _stop(self, outcome: str) -> None:
        if self.outcome is None:
            self.outcome = outcome
        self.model.stop_training = True
