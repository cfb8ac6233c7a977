"""One attempt of a job: restore, train with the fitfleet callbacks, store the result."""

from __future__ import annotations

import logging
import shutil
import threading
import time

import keras
import tensorflow as tf

from service.admission import modelspec, policy
from service.core.config import Settings
from service.core.dispatch import enqueue
from service.core.errors import LeaseLost
from service.storage import final_model_key, open_store
from service.store.jobs import Claim, JobStore
from service.store.metrics import MetricStore
from workers.sysmetrics import SystemSampler
from workers.training import devices, stops
from workers.training.callbacks.checkpointer import Checkpointer
from workers.training.callbacks.handover import Handover, Resume
from workers.training.callbacks.position import Position, Tracker
from workers.training.callbacks.pruning import Pruning
from workers.training.callbacks.recorder import MetricsRecorder
from workers.training.callbacks.timeline import Timeline
from workers.training.data import cache, formats, memory
from workers.training.journal import Journal
from workers.training.lease import Heartbeat, LeaseGuard
from workers.training.reasons import classify
from workers.training.resume.saver import Saver
from workers.training.retry import retry
from workers.training.runner import fit_from, load_data, model_at_latest

log = logging.getLogger("fitfleet.worker")


class Attempt:
    """Everything one attempt holds while it trains."""

    def __init__(
        self, claim: Claim, settings: Settings, preempted: threading.Event, extra_callbacks=()
    ):
        """``extra_callbacks`` run before the lease guard (instrumentation, profilers)."""
        self.claim, self.settings, self.preempted = claim, settings, preempted
        self.started = time.monotonic()
        self.extra_callbacks = list(extra_callbacks)
        self.jobs = JobStore(settings.database_url)
        self.store = open_store(settings.storage_url)
        self.spec = claim.spec
        self.strategy = None
        self.scratch = memory.scratch_dir(settings.home)
        self.heartbeat = Heartbeat(
            self.jobs,
            claim.job_id,
            claim.attempt_id,
            None,
            settings.lease_seconds,
            settings.heartbeat_seconds,
        )
        self.journal = Journal(self.jobs, claim.job_id, claim.attempt_id, claim.number)
        self.nan_message: str | None = None  # set when the loss diverged
        self.stopped: dict | None = None  # where and why EarlyStopping stopped the job

    def run(self) -> str:
        """Train; returns the outcome: succeeded, failed, cancelled, preempted or lost."""
        self.heartbeat.start()  # the lease is live from the claim on, through set-up
        with self.journal.handler:  # the attempt's warnings and errors, for its owner
            try:
                return self._run()
            except LeaseLost:
                log.warning(
                    "job %s: lease lost; stopping without further writes", self.claim.job_id
                )
                return "lost"
            except Exception as exc:
                code, message = classify(exc)
                log.exception("job %s failed: %s", self.claim.job_id, code)
                self.heartbeat.stop()
                self._finish("failed", error_code=code, error_message=message)
                return "failed"
            finally:
                self.heartbeat.stop()
                self.journal.close()
                shutil.rmtree(self.scratch, ignore_errors=True)
                keras.backend.clear_session()

    def _run(self) -> str:
        spec, claim, settings = self.spec, self.claim, self.settings
        if spec.get("deterministic", True):
            tf.config.experimental.enable_op_determinism()
        policy.check_spec_locations(spec, settings)  # the submit-time data rules, again here
        policy.check_data_sizes(spec, settings)
        self.strategy = self.strategy or devices.strategy_for(spec)
        train, val = load_data(spec, cache.cache_dir(settings.home, settings.data_cache_bytes))
        fit_spec = spec["fit"]
        plan = memory.BatchPlan(
            len(train),
            int(fit_spec.get("batch_size", 32)),
            int(spec.get("seed", 0)),
            bool(fit_spec.get("shuffle", True)),
        )
        epochs = int(fit_spec.get("epochs", 1))
        model, start, meta = model_at_latest(
            spec, train, claim, self.scratch, self.strategy, self.journal.note
        )
        validated = meta is None or meta.get("validated", True)
        user_callbacks = modelspec.make_callbacks(fit_spec.get("callbacks") or [])
        spe = plan.steps_per_epoch
        pos = Position(spe, epochs, epoch=start // spe, batch=start % spe, step=start)
        if not validated:  # the epoch ending at ``start`` has its batches but no validation
            pos.epoch, pos.batch = start // spe - 1, spe
        retry(
            lambda: self.jobs.mark_resumed(claim.job_id, claim.attempt_id, start),
            f"job {claim.job_id}: record the resume point",
        )
        log.info(
            "job %s attempt %d: %s at step %d (epoch %d, batch %d) of %d",
            claim.job_id,
            claim.number,
            "resuming" if start else "starting",
            start,
            pos.epoch,
            pos.batch,
            spe * epochs,
        )
        heartbeat = self.heartbeat
        heartbeat.pos = pos
        heartbeat.beat()
        recorder = self._recorder(pos)
        sampler = SystemSampler(recorder.record_system, settings.system_metrics_seconds)
        ck = spec.get("checkpoint") or {}
        saver = self._saver(
            jobs=self.jobs,
            store=self.store,
            job_id=claim.job_id,
            attempt_id=claim.attempt_id,
            attempt=claim.number,
            keep_last=int(ck.get("keep_last") or 3),
            keep_best=ck.get("keep_best"),
            scratch=self.scratch / "checkpoints",
            # the attempt's earlier events (first batch) before the checkpoint's
            before_commit=lambda: self.journal.flush() and recorder.flush(),
            project=claim.project,
        )
        resume_cb = Resume(user_callbacks)
        if meta is not None:
            resume_cb.callback_state = meta.get("callbacks")
            if start % spe or not validated:
                resume_cb.metric_arrays = meta["arrays"]
        checkpointer = Checkpointer(saver, pos, user_callbacks, ck)
        guard = LeaseGuard(heartbeat, checkpointer, self.preempted, pos)
        handover = Handover(user_callbacks, resume_cb)
        pruner = Pruning.for_job(settings.database_url, claim.job_id, pos)  # None: not a trial
        callbacks = [
            Tracker(pos),
            Timeline(self.journal, pos, self.started),
            handover,
            *user_callbacks,
            recorder,
            *([pruner] if pruner else []),
            resume_cb,
            checkpointer,
            *self.extra_callbacks,
            guard,
        ]
        self._before_fit(model)
        sampler.start()
        try:
            with devices.scope(self.strategy):
                if pruner is None or not pruner.passed(start, validated):
                    fit_from(
                        model,
                        train,
                        val,
                        plan,
                        start,
                        epochs,
                        callbacks,
                        pos,
                        resume_cb,
                        handover,
                        fit_spec,
                        validated=validated,
                        feed=self.feed,
                    )
        finally:
            outcome = guard.outcome or ("lost" if saver.lost.is_set() else "succeeded")
            sampler.stop()
            try:
                recorder.close(timeout=0 if outcome == "lost" else 120)
            finally:  # a final metric flush that failed still lets the saver finish
                saver.close(timeout=0 if outcome == "lost" else 60)
        if outcome == "succeeded" and (message := stops.nan_message(pos, user_callbacks)):
            self.nan_message = message
            outcome = "failed"
        self.stopped = (pruner and pruner.stopped()) or stops.early_stop(user_callbacks)
        return self._conclude(outcome, model)

    feed = formats  # what makes the datasets; a gang member's reads its share

    def _recorder(self, pos: Position):
        """The callback that stores the batch and epoch metric rows."""
        settings, claim = self.settings, self.claim
        return MetricsRecorder(
            MetricStore(settings.database_url),
            claim.job_id,
            claim.number,
            pos,
            settings.metrics_flush_seconds,
        )

    def _saver(self, **kw):
        """The background writer of checkpoints."""
        return Saver(**kw)

    def _before_fit(self, model) -> None:
        """Called with the restored model just before training starts."""

    def _conclude(self, outcome: str, model) -> str:
        claim = self.claim
        self.heartbeat.beat()  # the final progress, and a last check of the lease
        if outcome == "succeeded":
            key = final_model_key(claim.project, claim.job_id)
            path = self.scratch / "model.keras"
            model.save(path)
            retry(
                lambda: self.store.put_file(key, path),
                f"job {claim.job_id}: model upload",
                budget=600,
            )
            self.heartbeat.stop()
            if self.stopped:
                log.info(
                    "job %s: %s at epoch %d: %s",
                    claim.job_id,
                    self.stopped["by"],
                    self.stopped["epoch"],
                    self.stopped["reason"],
                )
            self._finish("succeeded", model_uri=self.store.uri(key), stopped=self.stopped)
        elif outcome == "failed":  # the loss diverged: no model to keep
            self.heartbeat.stop()
            self._finish("failed", error_code="nan_loss", error_message=self.nan_message)
        elif outcome == "cancelled":
            self.heartbeat.stop()
            self._finish("cancelled", error_code=None)
        elif outcome == "preempted":
            self.heartbeat.stop()
            self.journal.flush()  # its events before the release's
            reason = (
                "a job of higher priority needed the worker"
                if self.heartbeat.preempt.is_set() and not self.preempted.is_set()
                else "the worker was asked to stop"
            )
            released = retry(
                lambda: self.jobs.release(claim.job_id, claim.attempt_id, reason),
                f"job {claim.job_id}: release",
                budget=20,
            )
            if released:
                enqueue(
                    self.settings.broker_url,
                    self.settings.home,
                    claim.job_id,
                    self.spec.get("queue", "default"),
                    int(self.spec.get("priority", 0)),
                )
        log.info("job %s attempt %d: %s", claim.job_id, claim.number, outcome)
        return outcome

    def _finish(self, state_name: str, **kw) -> None:
        self.journal.flush()  # the attempt's events before the job's end
        try:
            retry(
                lambda: self.jobs.finish(
                    self.claim.job_id, self.claim.attempt_id, state_name, **kw
                ),
                f"job {self.claim.job_id}: finish",
                budget=300,
            )
        except LeaseLost:
            log.warning("job %s: not marking %s: lease lost", self.claim.job_id, state_name)
