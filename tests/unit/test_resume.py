"""Exact resume, in process: preempt an attempt at a chosen step, resume it, compare.

SQLite and a local-directory store (the embedded defaults); the crash tests with real
worker processes, PostgreSQL and S3 are in tests/integration.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from service.config import Settings  # noqa: E402
from service.jobs import JobStore  # noqa: E402
from service.metrics import MetricStore  # noqa: E402
from service.spec import normalize  # noqa: E402
from service.storage import final_model_key, open_store  # noqa: E402
from tests.specs import blobs, mlp_spec  # noqa: E402


@pytest.fixture
def env(tmp_path):
    from tests.conftest import migrated_sqlite

    x, y = blobs()
    np.savez(tmp_path / "train.npz", x=x, y=y)
    settings = Settings.from_env(
        {}, database_url=migrated_sqlite(tmp_path), storage_url=(tmp_path / "store").as_uri(),
        home=str(tmp_path), broker_url="filesystem://", heartbeat_seconds=0.2, lease_seconds=30)
    return settings, (tmp_path / "train.npz").as_uri()


class PreemptAt(keras.callbacks.Callback):
    """Raises the preemption flag after global step ``k`` of a fresh attempt."""

    def __init__(self, k: int, spe: int, flag: threading.Event):
        super().__init__()
        self.k, self.spe, self.flag = k, spe, flag

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch * self.spe + batch + 1 == self.k:
            self.flag.set()


def run_job(settings, spec, preempt_at=None):
    from workers.training.runner import Attempt

    jobs = JobStore(settings.database_url)
    job = jobs.create(normalize(spec, settings), epochs=spec["fit"]["epochs"], summary=None,
                      max_attempts=3)
    outcomes = []
    for _ in range(3):
        claim = jobs.claim(job["id"], "test-worker", settings.lease_seconds)
        if claim is None:
            break
        flag = threading.Event()
        extra = [PreemptAt(preempt_at, 6, flag)] if preempt_at and not outcomes else []
        outcomes.append(Attempt(claim, settings, flag, extra).run())
        if outcomes[-1] != "preempted":
            break
    return jobs.get(job["id"]), outcomes


def final_weights(settings, job_id):
    store = open_store(settings.storage_url)
    project = JobStore(settings.database_url).get(job_id)["project"]
    path = store.base / final_model_key(project, job_id)
    return [w.numpy() for w in keras.models.load_model(path).weights]


@pytest.mark.parametrize("k", [4, 6, 9], ids=["mid-epoch", "epoch-end", "mid-epoch-2"])
def test_preempted_job_resumes_bit_identical(env, k):
    settings, url = env
    spec = mlp_spec(url, checkpoint={"every_n_batches": 2})
    ref, ref_outcomes = run_job(settings, spec)
    got, outcomes = run_job(settings, spec, preempt_at=k)
    assert ref_outcomes == ["succeeded"]
    assert outcomes == ["preempted", "succeeded"]
    assert got["state"] == "succeeded"
    attempts = JobStore(settings.database_url).attempts(got["id"])
    assert attempts[0]["state"] == "preempted"
    assert attempts[1]["resumed_from_step"] == k
    for a, b in zip(final_weights(settings, ref["id"]), final_weights(settings, got["id"])):
        np.testing.assert_array_equal(a, b)
    metrics = MetricStore(settings.database_url)
    for kind, count in (("batch", 18), ("epoch", 3)):
        ref_rows = metrics.read(ref["id"], kind)["rows"]
        got_rows = metrics.read(got["id"], kind)["rows"]
        assert [r["step"] for r in got_rows] == [r["step"] for r in ref_rows]
        assert len(got_rows) == count
        assert [r["logs"] for r in got_rows] == [r["logs"] for r in ref_rows]
