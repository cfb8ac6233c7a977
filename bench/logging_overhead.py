"""Per-batch logging cost: fitfleet's training loop against bare ``model.fit``, side by side.

Three variants train the same small MLP on the same data for the same number of steps, in
one process, interleaved over several rounds (median of each):

- ``bare``: ``model.fit(x, y, batch_size=..., shuffle=True)`` — plain Keras on arrays;
- ``pipeline``: fitfleet's deterministic data pipeline, no callbacks;
- ``fitfleet``: the pipeline plus the callbacks a worker runs (position tracking, metric
  rows buffered and written in bulk to a real database, lease guard) — checkpoints off.

Prints ratios; the target is fitfleet/bare <= 1.05. Usage:
    python bench/logging_overhead.py [--database-url URL] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import keras
import numpy as np

from service.store.jobs import JobStore
from service.store.metrics import MetricStore
from service.store.migrate import upgrade
from workers.training.callbacks.position import Position, Tracker
from workers.training.callbacks.recorder import MetricsRecorder
from workers.training.data import memory as data
from workers.training.lease import Heartbeat, LeaseGuard

SAMPLES, FEATURES, BATCH, EPOCHS = 32_000, 32, 32, 2


def make_model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((FEATURES,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    url = args.database_url or f"sqlite:///{tmp / 'bench.db'}"
    upgrade(url)
    jobs, metrics = JobStore(url), MetricStore(url)

    rng = np.random.default_rng(0)
    x = rng.normal(size=(SAMPLES, FEATURES)).astype("float32")
    y = rng.integers(0, 10, size=SAMPLES).astype("int64")
    arrays = data.Arrays(x, y)
    plan = data.BatchPlan(SAMPLES, BATCH, 0, True)
    spe = plan.steps_per_epoch
    steps = spe * EPOCHS

    def bare():
        model = make_model()
        return timed(
            lambda: model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=True, verbose=0)
        )

    def pipeline():
        model = make_model()
        ds = data.make_dataset(arrays, plan, 0, steps)
        return timed(
            lambda: model.fit(ds, epochs=EPOCHS, steps_per_epoch=spe, verbose=0, shuffle=False)
        )

    def fitfleet():
        model = make_model()
        job = jobs.create({"name": "bench"}, epochs=EPOCHS, summary=None, max_attempts=1)
        claim = jobs.claim(job["id"], "bench", 60)
        pos = Position(spe, EPOCHS)
        hb = Heartbeat(jobs, job["id"], claim.attempt_id, pos, 60, 2.0).start()
        recorder = MetricsRecorder(metrics, job["id"], 1, pos, flush_seconds=1.0)
        guard = LeaseGuard(hb, None, threading.Event(), pos)
        ds = data.make_dataset(arrays, plan, 0, steps)
        seconds = timed(
            lambda: model.fit(
                ds,
                epochs=EPOCHS,
                steps_per_epoch=spe,
                verbose=0,
                shuffle=False,
                callbacks=[Tracker(pos), recorder, guard],
            )
        )
        recorder.close()
        hb.stop()
        assert metrics.count(job["id"], "batch") == steps
        return seconds

    variants = {"bare": bare, "pipeline": pipeline, "fitfleet": fitfleet}
    for fn in variants.values():  # warm-up: tracing, first allocations
        fn()
    results = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, fn in variants.items():
            results[name].append(fn())
    med = {name: statistics.median(v) for name, v in results.items()}
    backend = url.split(":", 1)[0]
    print(f"{steps} steps of batch {BATCH}, {args.rounds} rounds, database {backend}")
    for name in variants:
        print(f"  {name:9s} median {med[name]:.3f}s  ({1000 * med[name] / steps:.3f} ms/step)")
    print(f"  fitfleet / bare      = {med['fitfleet'] / med['bare']:.3f}")
    print(f"  fitfleet / pipeline  = {med['fitfleet'] / med['pipeline']:.3f}  (logging alone)")
    print(f"  pipeline / bare      = {med['pipeline'] / med['bare']:.3f}  (data order alone)")


if __name__ == "__main__":
    main()
