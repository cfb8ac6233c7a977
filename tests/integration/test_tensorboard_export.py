"""TensorBoard export on SQLite and PostgreSQL: a replayed step is one event, non-finite
values survive, and pages of rows join without a gap."""

from __future__ import annotations

import math

import pytest

from service.store import tensorboard
from service.store.jobs import JobStore
from service.store.metrics import MetricStore

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def row(kind, step, attempt, logs, epoch=0):
    return {
        "kind": kind,
        "step": step,
        "epoch": epoch,
        "batch": None if kind == "epoch" else step - 1,
        "attempt": attempt,
        "logs": logs,
        "wall_time": 1000.0 + step,
    }


def scalars(folder, tag):
    acc = event_accumulator.EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_replayed_steps_and_non_finite_values(db_url, tmp_path, monkeypatch):
    job = JobStore(db_url).create(
        {"name": "m", "model": {}}, epochs=2, summary=None, max_attempts=3
    )
    metrics = MetricStore(db_url)
    metrics.write(job["id"], [row("batch", s, 1, {"loss": 1.0 / s}) for s in range(1, 8)])
    # attempt 2 resumed from step 4: it replays 5..7 and goes on to 10, where it diverges
    again = [row("batch", s, 2, {"loss": 2.0 / s}) for s in range(5, 10)]
    metrics.write(job["id"], again + [row("batch", 10, 2, {"loss": math.inf})])
    metrics.write(
        job["id"],
        [
            row("epoch", 5, 1, {"loss": 0.5, "val_loss": 0.6}, epoch=0),
            row("epoch", 10, 2, {"loss": math.nan, "val_loss": -math.inf}, epoch=1),
        ],
    )
    monkeypatch.setattr(tensorboard, "PAGE", 3)  # several pages of rows
    counts = tensorboard.write_event_files(metrics, job["id"], tmp_path)
    assert counts == {"train": 10 + 2, "validation": 2}
    batch = scalars(tmp_path / "train", "batch_loss")
    assert [s for s, _ in batch] == list(range(1, 11))
    assert [v for _, v in batch[:4]] == pytest.approx([1.0 / s for s in range(1, 5)])
    assert [v for _, v in batch[4:9]] == pytest.approx([2.0 / s for s in range(5, 10)])
    assert batch[9][1] == math.inf
    epoch = scalars(tmp_path / "train", "epoch_loss")
    assert epoch[0] == (0, 0.5) and epoch[1][0] == 1 and math.isnan(epoch[1][1])
    val = scalars(tmp_path / "validation", "epoch_loss")
    assert val[0][0] == 0 and val[0][1] == pytest.approx(0.6) and val[1] == (1, -math.inf)
