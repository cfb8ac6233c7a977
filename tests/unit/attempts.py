"""Helpers for in-process training attempts: run a job to its end (preempting the first
attempt at a chosen moment), read its final weights, and the callbacks that choose the
moment. The embedded defaults (a local-directory store) with the database given."""

from __future__ import annotations

import threading

import keras
import numpy as np

from service.admission.spec import normalize
from service.storage import final_model_key, open_store
from service.store.jobs import JobStore


class PreemptAt(keras.callbacks.Callback):
    """Raises the preemption flag after global step ``k`` of a fresh attempt, or, with
    ``validating``, at the first validation batch after step ``k`` (an epoch's end)."""

    def __init__(self, k: int, spe: int, flag: threading.Event, validating: bool = False):
        super().__init__()
        self.k, self.spe, self.flag, self.validating = k, spe, flag, validating
        self.armed = False

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch * self.spe + batch + 1 == self.k:
            self.armed = True
            if not self.validating:
                self.flag.set()

    def on_test_batch_end(self, batch, logs=None):
        if self.armed and self.validating:
            self.flag.set()


def run_job(settings, spec, preempt_at=None, validating=False, spe=6, extra=()):
    """Create the job and run attempts until one does not end preempted.

    Returns (the job, the outcomes of its attempts).
    """
    from workers.training.attempt import Attempt

    jobs = JobStore(settings.database_url)
    job = jobs.create(
        normalize(spec, settings), epochs=spec["fit"]["epochs"], summary=None, max_attempts=3
    )
    outcomes = []
    for _ in range(3):
        claim = jobs.claim(job["id"], "test-worker", settings.lease_seconds)
        if claim is None:
            break
        flag = threading.Event()
        callbacks = list(extra)
        if preempt_at and not outcomes:
            callbacks.append(PreemptAt(preempt_at, spe, flag, validating))
        outcomes.append(Attempt(claim, settings, flag, callbacks).run())
        if outcomes[-1] != "preempted":
            break
    return jobs.get(job["id"]), outcomes


def final_weights(settings, job_id) -> list[np.ndarray]:
    """The weights of the job's final ``.keras`` file."""
    store = open_store(settings.storage_url)
    project = JobStore(settings.database_url).get(job_id)["project"]
    path = store.base / final_model_key(project, job_id)
    return [w.numpy() for w in keras.models.load_model(path).weights]


def assert_same_weights(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
