"""NaN and +/-inf in logs: stored on every database, served as strings, never blocking."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from service.core.errors import FitfleetError
from service.store.jobs import JobStore
from service.store.metrics import MetricStore
from tests.conftest import free_port

keras = pytest.importorskip("keras")

from workers.training.callbacks.position import Position, Tracker
from workers.training.callbacks.recorder import MetricsRecorder

STRICT = {"parse_constant": lambda name: pytest.fail(f"{name} is not JSON")}


def new_job(url: str) -> str:
    return JobStore(url).create({"name": "m", "model": {}}, epochs=1, summary=None, max_attempts=3)[
        "id"
    ]


def row(step: int, loss, kind: str = "batch") -> dict:
    return {
        "kind": kind,
        "step": step,
        "epoch": 0,
        "batch": step,
        "attempt": 1,
        "logs": {"loss": loss, "acc": 0.5},
        "wall_time": 1000.0 + step,
    }


def unreachable() -> MetricStore:
    return MetricStore(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nothing")


def test_a_diverging_fit_stores_every_batch_and_epoch_row(db_url):
    keras.utils.set_random_seed(1)
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    y = (x.sum(axis=1) > 0).astype("float32")
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)]
    )
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=1e12), loss="mse")
    job_id, pos = new_job(db_url), Position(steps_per_epoch=8, epochs=3)
    recorder = MetricsRecorder(MetricStore(db_url), job_id, 1, pos, flush_seconds=0.05)
    model.fit(
        x, y, batch_size=8, epochs=3, verbose=0, shuffle=False, callbacks=[Tracker(pos), recorder]
    )
    assert recorder.close(timeout=30)
    metrics = MetricStore(db_url)
    batches = metrics.read(job_id, "batch")["rows"]
    epochs = metrics.read(job_id, "epoch")["rows"]
    assert [r["step"] for r in batches] == list(range(1, 25))
    assert [r["step"] for r in epochs] == [8, 16, 24]
    losses = [r["logs"]["loss"] for r in batches]
    assert isinstance(losses[0], float)  # before the divergence: a plain number
    assert {"NaN", "Infinity"} & set(losses)  # after it: the documented strings
    assert recorder.rejected == 0


def test_nan_and_inf_are_stored_and_served_as_strings(db_url):
    metrics, job_id = MetricStore(db_url), new_job(db_url)
    metrics.write(
        job_id,
        [
            row(1, 0.5),
            row(2, math.nan),
            row(3, math.inf),
            row(4, -math.inf),
            row(4, -math.inf, kind="epoch"),
        ],
    )
    got = metrics.read(job_id, "batch")["rows"]
    assert [r["logs"]["loss"] for r in got] == [0.5, "NaN", "Infinity", "-Infinity"]
    assert metrics.read(job_id, "epoch")["rows"][0]["logs"] == {"loss": "-Infinity", "acc": 0.5}
    metrics.write(job_id, [row(2, "NaN")])  # already encoded: kept as it is
    assert metrics.read(job_id, "batch", after=1)["rows"][0]["logs"]["loss"] == "NaN"


def test_the_metrics_answer_is_strict_json(db_url, tmp_path):
    pytest.importorskip("flask")
    from tests.unit.apihelpers import api_client, make_settings

    client = api_client(make_settings(tmp_path, db_url))
    job_id = new_job(db_url)
    MetricStore(db_url).write(
        job_id, [row(s, v) for s, v in enumerate([1.0, math.inf, math.nan, -math.inf])]
    )
    for query in ("kind=batch", "kind=batch&max_points=3"):
        answer = client.get(f"/api/v1/jobs/{job_id}/metrics?{query}")
        assert answer.status_code == 200
        body = json.loads(answer.get_data(as_text=True), **STRICT)
        assert "NaN" in [r["logs"]["loss"] for r in body["rows"]]


def test_a_row_that_cannot_be_written_is_set_aside_and_the_others_stored(db_url):
    job_id, pos = new_job(db_url), Position(steps_per_epoch=10, epochs=1)
    recorder = MetricsRecorder(MetricStore(db_url), job_id, 1, pos, flush_seconds=60)
    for step in range(1, 6):
        pos.step = pos.batch = step
        recorder.on_train_batch_end(step - 1, {"loss": 1.0 / step})
    recorder._add("batch", 2**63, 0, 0, {"loss": 1.0})  # beyond any BIGINT column
    pos.step = pos.batch = 6
    recorder.on_train_batch_end(5, {"loss": math.nan})
    assert recorder.flush() is True  # the bad row does not hold the others back
    assert [r["step"] for r in MetricStore(db_url).read(job_id, "batch")["rows"]] == [
        1,
        2,
        3,
        4,
        5,
        6,
    ]
    assert recorder.rejected == 1 and recorder.written == 6
    seen = JobStore(db_url).get(job_id)["metrics"]
    assert seen["rows_rejected"] == 1
    assert str(2**63) in seen["rejected_reason"] and "SELECT" not in seen["rejected_reason"]
    recorder.on_train_batch_end(6, {"loss": 0.1})
    assert recorder.close(timeout=5)
    assert JobStore(db_url).list(None, 5, None)[0][0]["metrics"]["rows_rejected"] == 1


def test_an_unreachable_database_keeps_every_row_for_the_next_flush(db_url):
    job_id, pos = new_job(db_url), Position(steps_per_epoch=10, epochs=1)
    recorder = MetricsRecorder(unreachable(), job_id, 1, pos, flush_seconds=60)
    for step in range(1, 4):
        pos.step = pos.batch = step
        recorder.on_train_batch_end(step - 1, {"loss": float(step)})
    assert recorder.flush() is False
    assert recorder.rejected == 0
    recorder.store = MetricStore(db_url)  # the database is back
    assert recorder.close(timeout=5)
    assert MetricStore(db_url).count(job_id, "batch") == 3
    assert JobStore(db_url).get(job_id)["metrics"]["rows_rejected"] == 0


def test_a_failed_final_flush_fails_the_job_with_metrics_lost(sqlite_url):
    pos = Position(steps_per_epoch=10, epochs=1, step=1, batch=1)
    recorder = MetricsRecorder(unreachable(), new_job(sqlite_url), 1, pos, flush_seconds=60)
    recorder.on_train_batch_end(0, {"loss": 1.0})
    with pytest.raises(FitfleetError) as raised:
        recorder.close(timeout=0.5)
    assert raised.value.code == "metrics_lost" and "1 metric row" in raised.value.message
    from workers.training.reasons import classify

    assert classify(raised.value) == ("metrics_lost", raised.value.message)


def test_a_lost_attempt_or_a_failing_fit_is_not_masked_by_the_final_flush(sqlite_url):
    pos = Position(steps_per_epoch=10, epochs=1, step=1, batch=1)
    recorder = MetricsRecorder(unreachable(), new_job(sqlite_url), 1, pos, flush_seconds=60)
    recorder.on_train_batch_end(0, {"loss": 1.0})
    assert recorder.close(timeout=0) is False  # a lost attempt: the next one replays it
    again = MetricsRecorder(unreachable(), new_job(sqlite_url), 1, pos, flush_seconds=60)
    again.on_train_batch_end(0, {"loss": 1.0})
    with pytest.raises(ZeroDivisionError):
        try:
            raise ZeroDivisionError("fit failed")
        finally:
            assert again.close(timeout=0.2) is False


def expected_extremes(values: dict[int, float], buckets: int, width: int) -> set[int]:
    """Each bucket's min and max step by -inf < numbers < inf < NaN (earliest on ties)."""
    from service.store.nonfinite import order_key

    steps = {max(values)}
    for b in range(buckets):
        inside = [s for s in sorted(values) if s // width == b]
        steps.add(min(inside, key=lambda s: (order_key(values[s]), s)))
        steps.add(min(inside, key=lambda s: (tuple(-k for k in order_key(values[s])), s)))
    return steps


@pytest.mark.parametrize("n,max_points", [(24, 9), (256, 9), (4096, 5)])
def test_downsampling_keeps_nan_and_inf_as_a_bucket_extreme(db_url, n, max_points):
    """Buckets of 3 (metric rows), of 64 (rollup blocks) and of 2048 (higher blocks)."""
    rng = np.random.default_rng(n)
    values = {s: float(v) for s, v in enumerate(rng.normal(size=n))}
    width = n // ((max_points - 1) // 2)
    for fraction, special in (
        (0.1, math.nan),
        (0.3, -math.inf),
        (0.6, math.inf),
        (0.8, math.nan),
        (0.85, math.nan),
    ):  # two NaN: the first counts
        values[int(n * fraction)] = special
    metrics, job_id = MetricStore(db_url), new_job(db_url)
    metrics.write(job_id, [row(s, v) for s, v in values.items()])
    body = metrics.read(job_id, "batch", max_points=max_points)
    steps = {r["step"] for r in body["rows"]}
    assert steps == expected_extremes(values, (max_points - 1) // 2, width)
    served = {r["step"]: r["logs"]["loss"] for r in body["rows"]}
    assert {"NaN", "-Infinity"} <= set(served.values())
    assert int(n * 0.8) in steps and int(n * 0.85) not in steps
    metrics.rebuild(job_id, "batch")  # rollups from scratch pick the same rows
    assert {
        r["step"] for r in metrics.read(job_id, "batch", max_points=max_points)["rows"]
    } == steps


def test_block_stats_order_nan_and_inf():
    from service.store import rollups

    stats = rollups.block_stats(
        [
            (1, {"loss": 2.0}),
            (2, {"loss": "NaN"}),
            (3, {"loss": 5}),
            (4, {"loss": "-Infinity"}),
            (5, {"loss": "NaN"}),
        ]
    )["stats"]
    assert stats["loss"] == ["-Infinity", 4, "NaN", 2]
    merged = rollups.merge(
        [
            rollups.block_stats([(9, {"loss": "Infinity"})]),
            rollups.block_stats([(7, {"loss": 1.0})]),
        ]
    )["stats"]
    assert merged["loss"] == [1.0, 7, "Infinity", 9]


def test_a_checkpoint_with_nan_logs_commits_and_reads_back_floats(db_url, tmp_path):
    pytest.importorskip("flask")
    from tests.unit.apihelpers import api_client, make_settings

    store = JobStore(db_url)
    job_id = new_job(db_url)
    claim = store.claim(job_id, "w", 60.0)
    store.commit_checkpoint(
        job_id,
        claim.attempt_id,
        {
            "step": 3,
            "epoch": 0,
            "batch": 3,
            "uri": "file:///cp/3",
            "files": {},
            "bytes": 1,
            "sha256": "0" * 64,
            "logs": {"loss": math.nan, "val_loss": math.inf, "acc": 0.5},
        },
    )
    logs = store.checkpoints(job_id)[0]["logs"]  # the worker's side: floats, as Keras logs
    assert math.isnan(logs["loss"]) and logs["val_loss"] == math.inf and logs["acc"] == 0.5
    client = api_client(make_settings(tmp_path, db_url))
    served = {"loss": "NaN", "val_loss": "Infinity", "acc": 0.5}
    for path, pick in (
        ("", lambda b: b["latest_checkpoint"]),
        ("/checkpoints", lambda b: b["checkpoints"][0]),
        ("/detail", lambda b: b["checkpoints"][0]),
    ):
        answer = client.get(f"/api/v1/jobs/{job_id}{path}")
        assert answer.status_code == 200, path
        assert pick(json.loads(answer.get_data(as_text=True), **STRICT))["logs"] == served


def test_retention_never_keeps_a_nan_checkpoint_as_the_best():
    from types import SimpleNamespace

    from service.store.retention import _best_step

    rows = [
        SimpleNamespace(step=s, logs={"val_loss": v})
        for s, v in ((1, math.nan), (2, 0.5), (3, 0.3), (4, math.inf), (5, -math.inf))
    ]
    assert _best_step(rows, {"monitor": "val_loss", "mode": "min"}) == 3
    assert _best_step(rows, {"monitor": "val_loss", "mode": "max"}) == 2


def test_a_job_that_diverges_keeps_its_rows_and_checkpoints(db_url, tmp_path):
    """The issue's case, through the worker: SGD with a learning rate of 1e12."""
    import threading

    from service.admission.spec import normalize
    from tests.conftest import embedded_settings
    from tests.specs import blobs, mlp_spec
    from workers.training.attempt import Attempt

    x, y = blobs()
    np.savez(tmp_path / "train.npz", x=x, y=y)
    settings = embedded_settings(tmp_path, database_url=db_url)
    spec = mlp_spec((tmp_path / "train.npz").as_uri(), checkpoint={"every_n_batches": 2})
    spec["compile"]["optimizer"] = {"class_name": "SGD", "config": {"learning_rate": 1e12}}
    jobs = JobStore(db_url)
    job = jobs.create(normalize(spec, settings), epochs=3, summary=None, max_attempts=1)
    claim = jobs.claim(job["id"], "test-worker", settings.lease_seconds)
    Attempt(claim, settings, threading.Event(), []).run()
    ended = jobs.get(job["id"])
    assert ended["state"] != "running"
    assert (ended["error"] or {}).get("code") != "metrics_lost"
    metrics = MetricStore(db_url)
    batches = metrics.read(job["id"], "batch")["rows"]
    assert [r["step"] for r in batches] == list(range(1, 19))  # 96 rows / 16, 3 epochs
    assert [r["step"] for r in metrics.read(job["id"], "epoch")["rows"]] == [6, 12, 18]
    assert "NaN" in [r["logs"]["loss"] for r in batches]
    committed = jobs.checkpoints(job["id"])
    assert committed and any(not math.isfinite(c["logs"]["loss"]) for c in committed)
    assert ended["metrics"]["rows_rejected"] == 0


def test_a_job_whose_last_metric_rows_cannot_be_written_fails_with_metrics_lost(
    db_url, tmp_path, monkeypatch
):
    """Through the worker: the database refuses nothing, but the metric writes never get
    through (an outage of the metrics path); the job must not end ``succeeded``."""
    import threading

    from service.admission.spec import normalize
    from service.core.errors import Unavailable
    from tests.conftest import embedded_settings
    from tests.specs import blobs, mlp_spec
    from workers.training import attempt

    class Unreachable(MetricStore):
        def write(self, job_id, rows):
            raise Unavailable("the database is unavailable")

    class QuickClose(MetricsRecorder):
        def close(self, timeout: float = 120.0) -> bool:
            return super().close(timeout=min(timeout, 0.5))

    monkeypatch.setattr(attempt, "MetricStore", Unreachable)
    monkeypatch.setattr(attempt, "MetricsRecorder", QuickClose)
    x, y = blobs()
    np.savez(tmp_path / "train.npz", x=x, y=y)
    settings = embedded_settings(tmp_path, database_url=db_url)
    spec = mlp_spec((tmp_path / "train.npz").as_uri(), epochs=1, checkpoint={"every_epoch": False})
    jobs = JobStore(db_url)
    job = jobs.create(normalize(spec, settings), epochs=1, summary=None, max_attempts=1)
    claim = jobs.claim(job["id"], "test-worker", settings.lease_seconds)
    assert attempt.Attempt(claim, settings, threading.Event(), []).run() == "failed"
    ended = jobs.get(job["id"])
    assert ended["state"] == "failed" and ended["error"]["code"] == "metrics_lost"
    assert "metric row(s) could not be written" in ended["error"]["message"]
    assert not ended["model_available"]
