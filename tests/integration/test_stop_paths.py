"""Every way training stops, in process: a NaN loss, EarlyStopping, a stop during the
validation pass (preemption, cancel), and what a restore leaves in the global RNGs."""

from __future__ import annotations

import json
import random
import threading
import time

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from service.admission.spec import normalize
from service.storage import key_of, open_store
from service.store.jobs import JobStore
from service.store.metrics import MetricStore
from tests.specs import blobs, mlp_spec
from tests.unit.attempts import PreemptAt, assert_same_weights, final_weights, run_job


def settings_with_data(directory, database_url=None, n=120, nan_row=None):
    """Embedded settings (on ``database_url`` if given) and the URL of a blobs ``.npz``;
    with ``nan_row``, float targets (for regression) with a NaN in that row."""
    from tests.conftest import embedded_settings

    x, y = blobs(n=n)
    if nan_row is not None:
        y = y.astype("float32")
        y[nan_row] = np.nan
    np.savez(directory / "train.npz", x=x, y=y)
    extra = {"database_url": database_url} if database_url else {}
    return embedded_settings(directory, **extra), (directory / "train.npz").as_uri()


def callbacks_spec(url, callbacks, **kw):
    spec = mlp_spec(url, **kw)
    spec["fit"]["callbacks"] = callbacks
    return spec


def regression_spec(url, callbacks, **kw):
    """A linear regression on the blobs (mean squared error, unshuffled batches)."""
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(1)])
    spec = callbacks_spec(url, callbacks, **kw)
    spec["model"] = json.loads(model.to_json())
    spec["compile"] = {
        "optimizer": {"class_name": "SGD", "config": {"learning_rate": 0.01}},
        "loss": "mse",
    }
    spec["fit"]["shuffle"] = False
    return spec


# -- NaN ------------------------------------------------------------------------------
# A NaN target in row 40: with shuffle off it is in the third batch (step 3) of every epoch.
# SQLite: storing NaN metric rows on PostgreSQL is the metric store's own test.


def test_terminate_on_nan_fails_the_job_and_claims_no_epoch(tmp_path):
    settings, url = settings_with_data(tmp_path, nan_row=40)
    spec = regression_spec(
        url, [{"class_name": "TerminateOnNaN", "config": {}}], checkpoint={"every_n_batches": 2}
    )
    job, outcomes = run_job(settings, spec)
    assert outcomes == ["failed"]
    assert job["state"] == "failed" and job["error"]["code"] == "nan_loss"
    message = job["error"]["message"]
    assert "step 3 (epoch 1, batch 3 of 6)" in message and "TerminateOnNaN" in message
    assert "learning rate" in message
    assert not job["model_available"]
    metrics = MetricStore(settings.database_url)
    assert metrics.read(job["id"], "epoch")["rows"] == []  # epoch 1 never finished
    assert [r["step"] for r in metrics.read(job["id"], "batch")["rows"]] == [1, 2, 3]
    cps = JobStore(settings.database_url).checkpoints(job["id"])
    assert [(c["step"], c["epoch"], c["batch"]) for c in cps] == [(2, 0, 2)]
    assert job["progress"]["step"] == 3


def test_a_loss_still_nan_at_the_end_fails_the_job(tmp_path):
    settings, url = settings_with_data(tmp_path, nan_row=40)
    spec = regression_spec(url, [], epochs=2)
    job, outcomes = run_job(settings, spec)
    assert outcomes == ["failed"]
    assert job["error"]["code"] == "nan_loss"
    assert "step 3 (epoch 1, batch 3 of 6)" in job["error"]["message"]
    assert "when training ended" in job["error"]["message"]
    assert not job["model_available"]
    rows = MetricStore(settings.database_url).read(job["id"], "epoch")["rows"]
    assert [r["step"] for r in rows] == [6, 12]  # both epochs did finish


# -- EarlyStopping --------------------------------------------------------------------


def test_early_stopping_is_a_success_that_says_where_and_why(tmp_path, db_url):
    settings, url = settings_with_data(tmp_path, db_url)
    # mode "max" on a falling val_loss: no improvement after epoch 1, a stop at epoch 2
    spec = callbacks_spec(
        url,
        [
            {
                "class_name": "EarlyStopping",
                "config": {
                    "monitor": "val_loss",
                    "mode": "max",
                    "patience": 1,
                    "restore_best_weights": True,
                },
            }
        ],
        epochs=5,
    )
    jobs = JobStore(settings.database_url)
    job, outcomes = run_job(settings, spec)
    assert outcomes == ["succeeded"]
    assert job["state"] == "succeeded" and job["error"] is None and job["model_available"]
    stopped = job["stopped"]
    assert stopped["by"] == "EarlyStopping" and stopped["epoch"] == 2
    assert stopped["monitor"] == "val_loss" and stopped["best_epoch"] == 1
    assert stopped["restored_best_weights"] is True
    assert "val_loss did not improve" in stopped["reason"]
    rows = MetricStore(settings.database_url).read(job["id"], "epoch")["rows"]
    assert [r["step"] for r in rows] == [6, 12]
    assert stopped["best"] == pytest.approx(rows[0]["logs"]["val_loss"])
    assert jobs.summary(job["id"])["stopped"] == stopped


def test_a_job_that_runs_its_epochs_says_nothing_stopped_it(tmp_path, db_url):
    settings, url = settings_with_data(tmp_path, db_url)
    job, outcomes = run_job(settings, mlp_spec(url, epochs=2))
    assert outcomes == ["succeeded"] and job["stopped"] is None


# -- RNG ---------------------------------------------------------------------------


class DrawRng(keras.callbacks.Callback):
    """Draws from Python's and NumPy's global RNGs at every batch, as user code may."""

    def on_train_batch_end(self, batch, logs=None):
        random.random()
        np.random.random()


class RecordRng(keras.callbacks.Callback):
    """Python's and NumPy's global RNG state when training begins."""

    def on_train_begin(self, logs=None):
        self.python = random.getstate()
        self.numpy = np.random.get_state()


def test_a_restore_leaves_the_saved_rng_state(tmp_path):
    from workers.training.attempt import Attempt

    settings, url = settings_with_data(tmp_path)
    spec = mlp_spec(url, checkpoint={"keep_last": 10})
    jobs = JobStore(settings.database_url)
    job = jobs.create(normalize(spec, settings), epochs=3, summary=None, max_attempts=3)
    flag = threading.Event()
    claim = jobs.claim(job["id"], "w1", settings.lease_seconds)
    first = Attempt(claim, settings, flag, [DrawRng(), PreemptAt(4, 6, flag)])
    assert first.run() == "preempted"
    (cp,) = [c for c in jobs.checkpoints(job["id"]) if c["step"] == 4]
    store = open_store(settings.storage_url)
    folder = store.base / key_of(store, cp["uri"])
    saved_python = json.loads((folder / "state.json").read_text())["python_rng"]
    with np.load(folder / "state.npz") as arrays:
        saved_keys, saved_meta = arrays["rng/numpy_keys"], arrays["rng/numpy_meta"]
    random.seed(12345)  # this process's state is not the saved one
    np.random.seed(12345)
    record = RecordRng()
    claim = jobs.claim(job["id"], "w2", settings.lease_seconds)
    assert Attempt(claim, settings, threading.Event(), [record]).run() == "succeeded"
    assert record.python == (saved_python[0], tuple(saved_python[1]), saved_python[2])
    np.testing.assert_array_equal(record.numpy[1], saved_keys)
    assert [record.numpy[2], record.numpy[3]] == saved_meta.tolist()


# -- stops during the validation pass -------------------------------------------------


def test_preemption_during_validation_saves_the_epochs_last_batch(tmp_path):
    settings, url = settings_with_data(tmp_path)
    spec = mlp_spec(url, checkpoint={"every_epoch": True, "keep_last": 10})
    ref, _ = run_job(settings, spec)
    job, outcomes = run_job(settings, spec, preempt_at=12, validating=True)
    assert outcomes == ["preempted", "succeeded"]
    jobs = JobStore(settings.database_url)
    _first, second = jobs.attempts(job["id"])
    assert second["resumed_from_step"] == 12
    at_12 = [c for c in jobs.checkpoints(job["id"]) if c["step"] == 12]
    # the resumed attempt's validated epoch-end checkpoint replaced the unvalidated one
    assert len(at_12) == 1 and at_12[0]["attempt_id"] == second["id"]
    assert "val_loss" in at_12[0]["logs"]
    assert_same_weights(final_weights(settings, ref["id"]), final_weights(settings, job["id"]))
    metrics = MetricStore(settings.database_url)
    assert [r["logs"] for r in metrics.read(job["id"], "epoch")["rows"]] == [
        r["logs"] for r in metrics.read(ref["id"], "epoch")["rows"]
    ]


def test_the_unvalidated_checkpoint_holds_training_logs_only(tmp_path):
    from workers.training.attempt import Attempt

    settings, url = settings_with_data(tmp_path)
    spec = mlp_spec(url, checkpoint={"every_epoch": True, "keep_last": 10})
    jobs = JobStore(settings.database_url)
    job = jobs.create(normalize(spec, settings), epochs=3, summary=None, max_attempts=3)
    flag = threading.Event()
    claim = jobs.claim(job["id"], "w1", settings.lease_seconds)
    assert Attempt(claim, settings, flag, [PreemptAt(12, 6, flag, True)]).run() == "preempted"
    newest = jobs.checkpoints(job["id"])[-1]
    assert (newest["step"], newest["epoch"], newest["batch"]) == (12, 1, 6)
    assert set(newest["logs"]) == {"loss", "accuracy"}
    rows = MetricStore(settings.database_url).read(job["id"], "epoch")["rows"]
    assert [r["step"] for r in rows] == [6]  # epoch 2's validation did not finish


class SlowValidation(keras.callbacks.Callback):
    """0.1 s per validation batch; asks for a cancel at the first one of epoch 1."""

    def __init__(self, jobs: JobStore, job_id: str):
        super().__init__()
        self.jobs, self.job_id = jobs, job_id
        self.asked_at = None
        self.after = 0  # validation batches run after the cancel was asked

    def on_test_batch_end(self, batch, logs=None):
        time.sleep(0.1)
        if self.asked_at is None:
            self.jobs.request_cancel(self.job_id)
            self.asked_at = time.monotonic()
        else:
            self.after += 1


def test_cancel_during_validation_stops_within_seconds(tmp_path, db_url):
    from workers.training.attempt import Attempt

    # 1,080 validation samples: 68 batches, about 7 s at 0.1 s each
    settings, url = settings_with_data(tmp_path, db_url, n=1200)
    spec = mlp_spec(url, epochs=2, checkpoint={"every_epoch": True})
    spec["fit"]["validation_split"] = 0.9
    jobs = JobStore(settings.database_url)
    job = jobs.create(normalize(spec, settings), epochs=2, summary=None, max_attempts=3)
    claim = jobs.claim(job["id"], "w1", settings.lease_seconds)
    slow = SlowValidation(jobs, job["id"])
    assert Attempt(claim, settings, threading.Event(), [slow]).run() == "cancelled"
    assert slow.after < 30, slow.after  # heartbeats are 0.2 s apart: a few batches, not 67
    job = jobs.get(job["id"])
    assert job["state"] == "cancelled"
    assert MetricStore(settings.database_url).read(job["id"], "epoch")["rows"] == []
    assert jobs.checkpoints(job["id"]) == []
