"""What checkpointing costs training: every epoch against never, on a model of a few
million parameters, through fitfleet's real training path, side by side in one run.

Every variant runs ``workers.training.attempt.Attempt`` on SQLite and a local store, the
same spec and data; only ``checkpoint.every_epoch`` differs, and in the third variant the
background writer keeps the training thread's CPU priority instead of a lower one. The
saver works in a background thread (snapshot in the training thread; write, upload and
commit beside it). Prints per-run seconds of the training loop (from the first to the
last batch row), the spread, the ratios and the load average before and after; the
target is at most 1.05. Usage:
    python bench/checkpoint_overhead.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import keras
import numpy as np

from service.admission.spec import normalize
from service.core.config import Settings
from service.store.jobs import JobStore
from service.store.metrics import MetricStore
from service.store.migrate import upgrade
from workers.training.attempt import Attempt
from workers.training.resume import saver

FEATURES, SAMPLES, BATCH, EPOCHS = 256, 6_000, 64, 4


def spec(data_url: str, every_epoch: bool) -> dict:
    model = keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dense(2048, activation="relu"),
            keras.layers.Dense(1024, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    return {
        "model": json.loads(model.to_json()),
        "compile": {"optimizer": "adam", "loss": "sparse_categorical_crossentropy"},
        "data": {"train": data_url},
        "fit": {"epochs": EPOCHS, "batch_size": BATCH},
        "checkpoint": {"every_epoch": every_epoch, "keep_last": 2},
    }, model.count_params()


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def train_seconds(settings: Settings, job_spec: dict, niceness: int = 10) -> float:
    saver.WRITER_NICENESS = niceness
    jobs, metrics = JobStore(settings.database_url), MetricStore(settings.database_url)
    job = jobs.create(normalize(job_spec, settings), epochs=EPOCHS, summary=None, max_attempts=1)
    claim = jobs.claim(job["id"], "bench", 600)
    outcome = Attempt(claim, settings, threading.Event()).run()
    assert outcome == "succeeded", outcome
    rows = metrics.read(job["id"], "batch", limit=100_000)["rows"]
    cps = jobs.checkpoints(job["id"], include_deleted=True)
    expected = EPOCHS if job_spec["checkpoint"]["every_epoch"] else 0
    assert len(cps) == expected, (len(cps), expected)
    return rows[-1]["wall_time"] - rows[0]["wall_time"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    url = f"sqlite:///{tmp / 'bench.db'}"
    upgrade(url)
    settings = Settings.from_env(
        {}, database_url=url, home=str(tmp), storage_url=(tmp / "store").as_uri(), lease_seconds=600
    )
    rng = np.random.default_rng(0)
    np.savez(
        tmp / "train.npz",
        x=rng.normal(size=(SAMPLES, FEATURES)).astype("float32"),
        y=rng.integers(0, 10, SAMPLES),
    )
    data_url = (tmp / "train.npz").as_uri()
    never, every = spec(data_url, False)[0], spec(data_url, True)[0]
    variants = {
        "no checkpoints": (never, saver.WRITER_NICENESS),
        "every epoch": (every, saver.WRITER_NICENESS),
        "every epoch, writer not niced": (every, 0),
    }
    params = spec(data_url, True)[1]
    load_before = loadavg()
    train_seconds(settings, never)  # warm-up
    results = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, (job_spec, niceness) in variants.items():
            results[name].append(train_seconds(settings, job_spec, niceness))
    med = {name: statistics.median(v) for name, v in results.items()}
    print(
        f"{params:,} parameters, {EPOCHS} epochs of {SAMPLES // BATCH + 1} steps, "
        f"{args.rounds} rounds (medians; load average {load_before} before, {loadavg()} after)"
    )
    for name, value in med.items():
        runs = ", ".join(f"{v:.2f}" for v in results[name])
        print(f"  {name:30s} {value:.3f}s  ({runs})")
    base = med["no checkpoints"]
    for name in list(variants)[1:]:
        ratios = sorted(v / b for v, b in zip(results[name], results["no checkpoints"]))
        print(
            f"  {name} / none = {med[name] / base:.3f}"
            f"  (per round {ratios[0]:.3f}-{ratios[-1]:.3f})"
        )


if __name__ == "__main__":
    main()
