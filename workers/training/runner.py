"""One attempt of a job: restore, train with the fitfleet callbacks, store the result.

A resume at global step ``s`` (epoch ``e``, batch ``b``) is two ``fit`` calls: the rest of
epoch ``e`` (``initial_epoch=e, epochs=e+1``, ``steps_per_epoch=spe-b``), then the whole
remaining epochs. Keras reads a dataset's length once per call, so this is what lets a
mid-epoch resume see exactly the batches an uninterrupted run would have seen. A resume
from a checkpoint taken during an abandoned validation pass first redoes that epoch's
validation and end (:func:`stops.finish_epoch`).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import shutil
import threading
from pathlib import Path

import keras
import tensorflow as tf

from service.admission import modelspec, policy
from service.core import keras_internals
from service.core.config import Settings
from service.core.dispatch import enqueue
from service.core.errors import FitfleetError, InvalidSpec, LeaseLost
from service.storage import final_model_key, open_store
from service.store.jobs import Claim, JobStore
from service.store.metrics import MetricStore
from workers.training import devices, stops
from workers.training.callbacks import (
    Checkpointer,
    Handover,
    MetricsRecorder,
    Position,
    Resume,
    Tracker,
)
from workers.training.data import formats, memory
from workers.training.lease import Heartbeat, LeaseGuard
from workers.training.reasons import RAISED, reason, scrub
from workers.training.resume import checkpoint
from workers.training.resume.saver import Saver
from workers.training.retry import retry

log = logging.getLogger("fitfleet.worker")


def build(spec: dict, sample: memory.Arrays, strategy=None):
    """The job's model, seeded, compiled, with metrics and optimizer built."""
    keras.utils.set_random_seed(int(spec.get("seed", 0)))
    with devices.scope(strategy):
        model = modelspec.build_model(spec["model"])
        modelspec.compile_model(model, copy.deepcopy(spec["compile"]))
        two = sample.take(slice(0, 2))
        keras_internals.symbolic_build(model, (two.x, two.y))
    return model


def build_shadow(spec: dict, sample: memory.Arrays):
    """The model the background saver writes checkpoints from, in host memory.

    Built under a CPU device scope, so the accelerator holds one copy of the weights (the
    training model's); snapshots are host NumPy arrays too. Build it before a restore:
    building reseeds Python's and NumPy's RNGs, which the restore sets.
    """
    with keras.device("cpu:0"):
        return build(spec, sample)


def load_data(spec: dict, cache: Path):
    """Training and validation data: arrays, or a prefix of shards streamed from ``cache``.

    ``data.sample_weight`` weights the training data and the validation split taken from
    it (as Keras splits them); a separate validation object is weighted when it holds
    arrays of the same names, as ``validation_data=(x, y, sample_weight)`` would be.
    """
    d = spec["data"]
    x, y, fmt, sw = d.get("x", "x"), d.get("y", "y"), d.get("format"), d.get("sample_weight")
    train = formats.load(d["train"], x, y, fmt, cache, sw)
    if d.get("validation"):
        try:
            val = formats.load(d["validation"], x, y, fmt, cache, sw)
        except InvalidSpec:
            if sw is None or d["validation"].endswith("/"):
                raise
            val = formats.load(d["validation"], x, y, fmt, cache)  # unweighted, as Keras
        return train, val
    return formats.split_validation(train, spec["fit"].get("validation_split") or 0.0)


def restore(model, claim: Claim, scratch: Path) -> tuple[int, dict | None]:
    """Load the newest intact checkpoint; a damaged one is skipped for the one before."""
    for cp in claim.checkpoints:
        folder = scratch / f"restore-{cp['step']:012d}"
        folder.mkdir(parents=True, exist_ok=True)
        try:
            try:
                store = open_store(cp["uri"])
                for name in checkpoint.FILES:
                    store.get_file(name, folder / name)
                problem = checkpoint.verify(folder, cp["files"])
            except Exception as exc:
                problem = f"cannot fetch it ({exc})"
            if problem:
                log.warning("job %s: skipping checkpoint at step %d: %s",
                            claim.job_id, cp["step"], problem)
                continue
            try:
                return cp["step"], checkpoint.load(model, folder)
            except Exception as exc:
                log.warning("job %s: checkpoint at step %d does not load: %s",
                            claim.job_id, cp["step"], exc)
                raise _Rebuild(cp["step"]) from exc
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return 0, None


class _Rebuild(Exception):
    """A checkpoint failed half-way through loading: the model must be built again."""

    def __init__(self, step: int):
        super().__init__(step)
        self.step = step


def fit_from(model, train, val, plan: memory.BatchPlan, start: int, epochs: int, callbacks,
             pos: Position, resume_cb: Resume, handover: Handover, fit_spec: dict,
             validated: bool = True) -> None:
    """Train from global step ``start`` to the end (``validated=False``: the epoch that
    ends at ``start`` still needs its validation pass and its end)."""
    spe = plan.steps_per_epoch
    epoch, batch = divmod(start, spe)
    if not validated:
        stops.finish_epoch(model, formats.validation_data(val, plan.batch_size), plan.batch_size,
                           epoch - 1, callbacks, resume_cb)
        if model.stop_training:
            return
    calls = []
    if batch:
        calls.append((start, (epoch + 1) * spe, epoch, epoch + 1, spe - batch))
        epoch += 1
    if epoch < epochs:
        calls.append((epoch * spe, epochs * spe, epoch, epochs, spe))
    outputs = output_names(model)
    for i, (first, stop, initial_epoch, last_epoch, steps) in enumerate(calls):
        pos.batch_offset = batch if i == 0 else 0
        handover.final = i == len(calls) - 1
        model.fit(  # batches are (x, y) or (x, y, sample_weight), as model.fit makes them
            formats.dataset(train, plan, first, stop, outputs),
            initial_epoch=initial_epoch, epochs=last_epoch, steps_per_epoch=steps,
            validation_data=formats.validation_data(val, plan.batch_size, outputs),
            validation_batch_size=plan.batch_size, class_weight=_class_weight(fit_spec),
            callbacks=callbacks, verbose=0, shuffle=False,
        )
        if model.stop_training:
            break


def output_names(model) -> list[str]:
    """The model's output names, in order (a Sequential's is its last layer's)."""
    names = getattr(model, "output_names", None)
    if names:
        return list(names)
    return [model.layers[-1].name] if getattr(model, "layers", None) else []


def _class_weight(fit_spec: dict) -> dict | None:
    """JSON keys are strings; Keras wants class indices."""
    weights = fit_spec.get("class_weight")
    return {int(k): float(v) for k, v in weights.items()} if weights else None


class Attempt:
    """Everything one attempt holds while it trains."""

    def __init__(self, claim: Claim, settings: Settings, preempted: threading.Event,
                 extra_callbacks=()):
        """``extra_callbacks`` run before the lease guard (instrumentation, profilers)."""
        self.claim, self.settings, self.preempted = claim, settings, preempted
        self.extra_callbacks = list(extra_callbacks)
        self.jobs = JobStore(settings.database_url)
        self.store = open_store(settings.storage_url)
        self.spec = claim.spec
        self.strategy = None
        self.scratch = memory.scratch_dir(settings.home)
        self.heartbeat = Heartbeat(self.jobs, claim.job_id, claim.attempt_id, None,
                                   settings.lease_seconds, settings.heartbeat_seconds)
        self.nan_message: str | None = None  # set when the loss diverged
        self.stopped: dict | None = None  # where and why EarlyStopping stopped the job

    def run(self) -> str:
        """Train; returns the outcome: succeeded, failed, cancelled, preempted or lost."""
        self.heartbeat.start()  # the lease is live from the claim on, through set-up
        try:
            return self._run()
        except LeaseLost:
            log.warning("job %s: lease lost; stopping without further writes", self.claim.job_id)
            return "lost"
        except Exception as exc:
            code, message = classify(exc)
            log.exception("job %s failed: %s", self.claim.job_id, code)
            self.heartbeat.stop()
            self._finish("failed", error_code=code, error_message=message)
            return "failed"
        finally:
            self.heartbeat.stop()
            shutil.rmtree(self.scratch, ignore_errors=True)
            keras.backend.clear_session()

    def _run(self) -> str:
        spec, claim, settings = self.spec, self.claim, self.settings
        if spec.get("deterministic", True):
            tf.config.experimental.enable_op_determinism()
        policy.check_spec_locations(spec, settings)  # the submit-time data rules, again here
        policy.check_data_sizes(spec, settings)
        self.strategy = devices.strategy_for(spec)
        train, val = load_data(spec, formats.cache_dir(settings.home, settings.data_cache_bytes))
        fit_spec = spec["fit"]
        plan = memory.BatchPlan(len(train), int(fit_spec.get("batch_size", 32)),
                              int(spec.get("seed", 0)), bool(fit_spec.get("shuffle", True)))
        epochs = int(fit_spec.get("epochs", 1))
        shadow = build_shadow(spec, train)  # before the restore: building reseeds the RNGs
        model, start, meta = self._model_at_latest(train)
        validated = meta is None or meta.get("validated", True)
        user_callbacks = modelspec.make_callbacks(fit_spec.get("callbacks") or [])
        spe = plan.steps_per_epoch
        pos = Position(spe, epochs, epoch=start // spe, batch=start % spe, step=start)
        if not validated:  # the epoch ending at ``start`` has its batches but no validation
            pos.epoch, pos.batch = start // spe - 1, spe
        retry(lambda: self.jobs.mark_resumed(claim.job_id, claim.attempt_id, start),
              f"job {claim.job_id}: record the resume point")
        log.info("job %s attempt %d: %s at step %d (epoch %d, batch %d) of %d",
                 claim.job_id, claim.number, "resuming" if start else "starting", start,
                 pos.epoch, pos.batch, spe * epochs)
        heartbeat = self.heartbeat
        heartbeat.pos = pos
        heartbeat.beat()
        recorder = MetricsRecorder(MetricStore(settings.database_url), claim.job_id,
                                   claim.number, pos, settings.metrics_flush_seconds)
        ck = spec.get("checkpoint") or {}
        saver = Saver(jobs=self.jobs, store=self.store, job_id=claim.job_id,
                      attempt_id=claim.attempt_id, attempt=claim.number,
                      shadow_factory=lambda: shadow,
                      keep_last=int(ck.get("keep_last") or 3), keep_best=ck.get("keep_best"),
                      scratch=self.scratch / "checkpoints", before_commit=recorder.flush,
                      project=claim.project)
        resume_cb = Resume(user_callbacks)
        if meta is not None:
            resume_cb.callback_state = meta.get("callbacks")
            if start % spe or not validated:
                resume_cb.metric_arrays = meta["arrays"]
        checkpointer = Checkpointer(saver, pos, user_callbacks, ck)
        guard = LeaseGuard(heartbeat, checkpointer, self.preempted, pos)
        handover = Handover(user_callbacks, resume_cb)
        callbacks = [Tracker(pos), handover, *user_callbacks, recorder, resume_cb, checkpointer,
                     *self.extra_callbacks, guard]
        try:
            with devices.scope(self.strategy):
                fit_from(model, train, val, plan, start, epochs, callbacks, pos, resume_cb,
                         handover, fit_spec, validated=validated)
        finally:
            outcome = guard.outcome or ("lost" if saver.lost.is_set() else "succeeded")
            try:
                recorder.close(timeout=0 if outcome == "lost" else 120)
            finally:  # a final metric flush that failed still lets the saver finish
                saver.close(timeout=0 if outcome == "lost" else 60)
        if outcome == "succeeded" and (message := stops.nan_message(pos, user_callbacks)):
            self.nan_message = message
            outcome = "failed"
        self.stopped = stops.early_stop(user_callbacks)
        return self._conclude(outcome, model)

    def _model_at_latest(self, train):
        """A built model with the newest loadable checkpoint in it (or fresh)."""
        claim = self.claim
        while True:
            model = build(self.spec, train, self.strategy)
            try:
                with devices.scope(self.strategy):
                    start, meta = restore(model, claim, self.scratch)
                return model, start, meta
            except _Rebuild as bad:
                older = [c for c in claim.checkpoints if c["step"] < bad.step]
                claim = dataclasses.replace(claim, checkpoints=older)

    def _conclude(self, outcome: str, model) -> str:
        claim = self.claim
        self.heartbeat.beat()  # the final progress, and a last check of the lease
        if outcome == "succeeded":
            key = final_model_key(claim.project, claim.job_id)
            path = self.scratch / "model.keras"
            model.save(path)
            retry(lambda: self.store.put_file(key, path), f"job {claim.job_id}: model upload",
                  budget=600)
            self.heartbeat.stop()
            if self.stopped:
                log.info("job %s: EarlyStopping at epoch %d: %s", claim.job_id,
                         self.stopped["epoch"], self.stopped["reason"])
            self._finish("succeeded", model_uri=self.store.uri(key), stopped=self.stopped)
        elif outcome == "failed":  # the loss diverged: no model to keep
            self.heartbeat.stop()
            self._finish("failed", error_code="nan_loss", error_message=self.nan_message)
        elif outcome == "cancelled":
            self.heartbeat.stop()
            self._finish("cancelled", error_code=None)
        elif outcome == "preempted":
            self.heartbeat.stop()
            released = retry(lambda: self.jobs.release(
                claim.job_id, claim.attempt_id, "the worker was asked to stop"),
                f"job {claim.job_id}: release", budget=20)
            if released:
                enqueue(self.settings.broker_url, self.settings.home, claim.job_id,
                        self.spec.get("queue", "default"), int(self.spec.get("priority", 0)))
        log.info("job %s attempt %d: %s", claim.job_id, claim.number, outcome)
        return outcome

    def _finish(self, state_name: str, **kw) -> None:
        try:
            retry(lambda: self.jobs.finish(self.claim.job_id, self.claim.attempt_id, state_name,
                                           **kw), f"job {self.claim.job_id}: finish", budget=300)
        except LeaseLost:
            log.warning("job %s: not marking %s: lease lost", self.claim.job_id, state_name)


_OWN_ERRORS = {"InvalidSpec": "invalid_spec", "NotFound": "data_not_found",
               "StorageError": "storage_error"}


def classify(exc: BaseException) -> tuple[str, str]:
    """An error code and a message safe to show the job's owner (no server paths, no secrets)."""
    if isinstance(exc, FitfleetError):
        code = {"invalid_spec": "invalid_spec", "not_found": "data_not_found"}.get(
            exc.code, exc.code)
        return code, exc.message
    if isinstance(exc, tf.errors.ResourceExhaustedError) or isinstance(exc, MemoryError):
        return "resource_exhausted", "the worker ran out of memory training this job"
    text = scrub(reason(exc))
    inner = RAISED.match(text)
    if isinstance(exc, tf.errors.OpError) and inner and inner.group(1) in _OWN_ERRORS:
        # one of fitfleet's own errors, raised while tf.data read the data
        return _OWN_ERRORS[inner.group(1)], inner.group(2)[:1000]
    message = f"{type(exc).__name__}: {text}"[:1000]
    if isinstance(exc, (ValueError, TypeError, tf.errors.InvalidArgumentError)):
        return "training_error", message
    return "internal_error", message
