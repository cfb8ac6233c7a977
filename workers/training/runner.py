"""Build, restore and train a job's model: the helpers and the fit loop of an attempt.

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
import time
from pathlib import Path

import keras

from service.admission import modelspec
from service.core import keras_internals
from service.core.errors import InvalidSpec
from service.storage import open_store
from service.store import events
from service.store.jobs import Claim
from workers.training import devices, stops
from workers.training.callbacks.handover import Handover, Resume
from workers.training.callbacks.position import Position
from workers.training.data import formats, memory
from workers.training.resume import checkpoint

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


def restore(model, claim: Claim, scratch: Path, note=None) -> tuple[int, dict | None]:
    """Load the newest intact checkpoint; a damaged one is skipped for the one before.

    ``note(type, data)`` hears of each skipped checkpoint and of the restore, timed.
    """
    note = note or (lambda type, data: None)
    for cp in claim.checkpoints:
        folder = scratch / f"restore-{cp['step']:012d}"
        folder.mkdir(parents=True, exist_ok=True)
        began = time.monotonic()
        try:
            try:
                store = open_store(cp["uri"])
                for name in checkpoint.FILES:
                    store.get_file(name, folder / name)
                problem = checkpoint.verify(folder, cp["files"])
            except Exception as exc:  # noqa: BLE001 - any failure: use the one before
                problem = f"cannot fetch it ({exc})"
            if problem:
                log.warning(
                    "job %s: skipping checkpoint at step %d: %s", claim.job_id, cp["step"], problem
                )
                note(events.CHECKPOINT_SKIPPED, {"step": cp["step"], "reason": problem})
                continue
            try:
                fetched = time.monotonic()
                meta = checkpoint.load(model, folder)
                note(events.RESTORED, _restored(cp, fetched - began, time.monotonic() - fetched))
                return cp["step"], meta
            except Exception as exc:
                log.warning(
                    "job %s: checkpoint at step %d does not load: %s", claim.job_id, cp["step"], exc
                )
                note(events.CHECKPOINT_SKIPPED, {"step": cp["step"], "reason": "does not load"})
                raise _Rebuild(cp["step"]) from exc
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return 0, None


def _restored(cp: dict, fetch: float, load: float) -> dict:
    return {
        "step": cp["step"],
        "checkpoint": cp.get("id"),
        "bytes": cp.get("bytes"),
        "fetch_seconds": round(fetch, 3),
        "load_seconds": round(load, 3),
    }


def model_at_latest(
    spec: dict, sample: memory.Arrays, claim: Claim, scratch: Path, strategy=None, note=None
) -> tuple:
    """``(model, step, meta)``: a built model with the newest loadable checkpoint in it
    (``(model, 0, None)`` when there is none)."""
    while True:
        model = build(spec, sample, strategy)
        try:
            with devices.scope(strategy):
                start, meta = restore(model, claim, scratch, note)
            return model, start, meta
        except _Rebuild as bad:
            older = [c for c in claim.checkpoints if c["step"] < bad.step]
            claim = dataclasses.replace(claim, checkpoints=older)


class _Rebuild(Exception):
    """A checkpoint failed half-way through loading: the model must be built again."""

    def __init__(self, step: int):
        super().__init__(step)
        self.step = step


def fit_from(
    model,
    train,
    val,
    plan: memory.BatchPlan,
    start: int,
    epochs: int,
    callbacks,
    pos: Position,
    resume_cb: Resume,
    handover: Handover,
    fit_spec: dict,
    validated: bool = True,
    feed=formats,
) -> None:
    """Train from global step ``start`` to the end (``validated=False``: the epoch that
    ends at ``start`` still needs its validation pass and its end). ``feed`` makes the
    datasets (``dataset``, ``validation_data``: :mod:`formats`, or a worker's share)."""
    spe = plan.steps_per_epoch
    epoch, batch = divmod(start, spe)
    if not validated:
        stops.finish_epoch(
            model,
            feed.validation_data(val, plan.batch_size),
            plan.batch_size,
            epoch - 1,
            callbacks,
            resume_cb,
        )
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
            feed.dataset(train, plan, first, stop, outputs),
            initial_epoch=initial_epoch,
            epochs=last_epoch,
            steps_per_epoch=steps,
            validation_data=feed.validation_data(val, plan.batch_size, outputs),
            validation_batch_size=plan.batch_size,
            class_weight=_class_weight(fit_spec),
            callbacks=callbacks,
            verbose=0,
            shuffle=False,
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
