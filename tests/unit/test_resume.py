"""Exact resume, in process: preempt an attempt at a chosen step, resume it, compare.

SQLite and a local-directory store (the embedded defaults); the crash tests with real
worker processes, PostgreSQL and S3 are in tests/integration.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from service.admission.spec import normalize
from service.storage import open_store
from service.store.jobs import JobStore
from service.store.metrics import MetricStore
from tests.specs import blobs, mlp_spec
from tests.unit.attempts import PreemptAt, assert_same_weights, final_weights, run_job


@pytest.fixture
def env(tmp_path):
    from tests.conftest import embedded_settings

    x, y = blobs()
    np.savez(tmp_path / "train.npz", x=x, y=y)
    settings = embedded_settings(tmp_path)
    return settings, (tmp_path / "train.npz").as_uri()


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
    assert_same_weights(final_weights(settings, ref["id"]), final_weights(settings, got["id"]))
    metrics = MetricStore(settings.database_url)
    for kind, count in (("batch", 18), ("epoch", 3)):
        ref_rows = metrics.read(ref["id"], kind)["rows"]
        got_rows = metrics.read(got["id"], kind)["rows"]
        assert [r["step"] for r in got_rows] == [r["step"] for r in ref_rows]
        assert len(got_rows) == count
        assert [r["logs"] for r in got_rows] == [r["logs"] for r in ref_rows]


@pytest.mark.parametrize("damage", ["bad-checksum", "missing-object"])
def test_damaged_checkpoint_is_skipped_for_the_one_before(env, damage):
    from service.storage import key_of

    settings, url = env
    spec = mlp_spec(url, checkpoint={"every_n_batches": 2, "keep_last": 3})
    ref, _ = run_job(settings, spec)
    jobs = JobStore(settings.database_url)
    job = jobs.create(normalize(spec, settings), epochs=3, summary=None, max_attempts=3)
    claim = jobs.claim(job["id"], "w1", settings.lease_seconds)
    flag = threading.Event()
    from workers.training.attempt import Attempt

    assert Attempt(claim, settings, flag, [PreemptAt(9, 6, flag)]).run() == "preempted"
    cps = jobs.checkpoints(job["id"])
    assert [c["step"] for c in cps] == [6, 8, 9]
    store = open_store(settings.storage_url)
    newest = store.base / key_of(store, cps[-1]["uri"])
    if damage == "bad-checksum":
        (newest / "model.keras").write_bytes(b"not a keras file")
    else:
        (newest / "state.npz").unlink()
    claim = jobs.claim(job["id"], "w2", settings.lease_seconds)
    assert Attempt(claim, settings, threading.Event()).run() == "succeeded"
    assert jobs.attempts(job["id"])[1]["resumed_from_step"] == 8
    assert_same_weights(final_weights(settings, ref["id"]), final_weights(settings, job["id"]))


def test_retention_keeps_the_last_k_and_the_best(env):
    from service.storage import key_of

    settings, url = env
    spec = mlp_spec(
        url,
        checkpoint={
            "every_n_batches": 1,
            "keep_last": 2,
            "keep_best": {"monitor": "val_loss", "mode": "max"},
        },
    )
    job, outcomes = run_job(settings, spec)
    assert outcomes == ["succeeded"]
    jobs = JobStore(settings.database_url)
    every = jobs.checkpoints(job["id"], include_deleted=True)
    assert [c["step"] for c in every] == list(range(1, 19))
    epoch_ends = [c for c in every if "val_loss" in c["logs"]]
    worst = max(epoch_ends, key=lambda c: c["logs"]["val_loss"])["step"]
    kept = [c["step"] for c in jobs.checkpoints(job["id"])]
    assert kept == sorted({17, 18, worst})
    store = open_store(settings.storage_url)
    for c in every:
        exists = (store.base / key_of(store, c["uri"])).exists()
        assert exists == (c["step"] in kept), c["step"]


def test_wall_clock_cadence_takes_checkpoints(env):
    settings, url = env
    spec = mlp_spec(url, checkpoint={"every_epoch": False, "every_seconds": 0.001, "keep_last": 50})
    job, outcomes = run_job(settings, spec)
    assert outcomes == ["succeeded"]
    steps = [c["step"] for c in JobStore(settings.database_url).checkpoints(job["id"])]
    assert len(steps) >= 12 and steps == sorted(steps)
