"""What the event timeline and log capture cost a step: today's worker loop with and without.

Two variants train the same small MLP on the same data for the same number of steps, with
a validation pass each epoch, in one process, interleaved over several rounds (each
round's order alternates; medians, with the spread):

- ``worker``: the callbacks a worker runs every batch (position tracking, metric rows
  buffered and bulk-written to a real database, lease heartbeat and guard);
- ``timeline``: the same plus what this adds: the :class:`Timeline` callback (first batch,
  each validation pass) and an attempt :class:`Journal` whose capture handler holds the
  root logger (one warning logged each epoch, as a worker might), its events and lines
  written by its own thread.

Prints the ratio timeline / worker of each round, in wall time and in the process's CPU
time (all threads: the journal's writes count), which a loaded machine disturbs less;
the target is <= 1.01. Usage:
    python bench/timeline_overhead.py [--database-url URL] [--rounds 7]
"""

from __future__ import annotations

import argparse
import logging
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

from service.store import events, worklogs
from service.store.jobs import JobStore
from service.store.metrics import MetricStore
from service.store.migrate import upgrade
from workers.training.callbacks.position import Position, Tracker
from workers.training.callbacks.recorder import MetricsRecorder
from workers.training.callbacks.timeline import Timeline
from workers.training.data import memory as data
from workers.training.journal import Journal
from workers.training.lease import Heartbeat, LeaseGuard

SAMPLES, FEATURES, BATCH, EPOCHS = 32_000, 32, 32, 2
log = logging.getLogger("fitfleet.bench")


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


class WarnEachEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        log.warning("epoch %d: a warning a worker might log", epoch + 1)


def hook_seconds(jobs, calls: int = 200_000) -> float:
    """Seconds one call of the timeline's batch hook takes once the first batch is noted:
    all the per-step work it adds (the journal's writes run in its own thread)."""

    class Quiet:
        def note(self, type, data):
            pass

    cb = Timeline(Quiet(), Position(10, 1), time.monotonic())
    cb.on_train_batch_end(0)
    best = float("inf")
    for _ in range(5):
        began = time.perf_counter()
        for i in range(calls):
            cb.on_train_batch_end(i)
        best = min(best, (time.perf_counter() - began) / calls)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    url = args.database_url or f"sqlite:///{tmp / 'bench.db'}"
    upgrade(url)
    jobs, metrics = JobStore(url), MetricStore(url)

    rng = np.random.default_rng(0)
    x = rng.normal(size=(SAMPLES, FEATURES)).astype("float32")
    y = rng.integers(0, 10, size=SAMPLES).astype("int64")
    arrays = data.Arrays(x, y)
    val = (x[:2000], y[:2000])
    plan = data.BatchPlan(SAMPLES, BATCH, 0, True)
    spe = plan.steps_per_epoch
    steps = spe * EPOCHS

    def run(with_timeline: bool) -> tuple[float, float]:
        model = make_model()
        job = jobs.create({"name": "bench"}, epochs=EPOCHS, summary=None, max_attempts=1)
        claim = jobs.claim(job["id"], "bench", 60)
        started = time.monotonic()
        pos = Position(spe, EPOCHS)
        hb = Heartbeat(jobs, job["id"], claim.attempt_id, pos, 60, 2.0).start()
        recorder = MetricsRecorder(metrics, job["id"], 1, pos, flush_seconds=1.0)
        guard = LeaseGuard(hb, None, threading.Event(), pos)
        callbacks = [Tracker(pos), recorder, WarnEachEpoch(), guard]
        journal = Journal(jobs, job["id"], claim.attempt_id, claim.number)
        if with_timeline:
            callbacks.insert(1, Timeline(journal, pos, started))
            logging.getLogger().addHandler(journal.handler)
        ds = data.make_dataset(arrays, plan, 0, steps)
        began, cpu = time.perf_counter(), time.process_time()
        try:
            model.fit(
                ds,
                epochs=EPOCHS,
                steps_per_epoch=spe,
                validation_data=val,
                validation_batch_size=256,
                verbose=0,
                shuffle=False,
                callbacks=callbacks,
            )
            seconds = (time.perf_counter() - began, time.process_time() - cpu)
        finally:
            logging.getLogger().removeHandler(journal.handler)
            recorder.close()
            hb.stop()
            journal.close()
        assert metrics.count(job["id"], "batch") == steps
        if with_timeline:
            kinds = [e["type"] for e in events.list_events(url, job["id"])["events"]]
            assert kinds.count(events.VALIDATED) == EPOCHS and events.FIRST_BATCH in kinds
            assert len(worklogs.read(url, job["id"])["lines"]) == EPOCHS
        return seconds

    logging.getLogger().addHandler(logging.NullHandler())  # both variants: no stderr lines
    logging.getLogger().setLevel(logging.WARNING)
    for flag in (False, True):  # warm-up: tracing, first allocations
        run(flag)
    results: dict[str, list[tuple[float, float]]] = {"worker": [], "timeline": []}
    for r in range(args.rounds):
        order = (False, True) if r % 2 == 0 else (True, False)
        for flag in order:
            results["timeline" if flag else "worker"].append(run(flag))
    hook = hook_seconds(jobs)
    load = os.getloadavg()
    backend = url.split(":", 1)[0]
    print(
        f"{steps} steps of batch {BATCH} and {EPOCHS} validation passes, {args.rounds} rounds, "
        f"database {backend}, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    for i, clock in enumerate(("wall", "cpu")):
        for name, values in results.items():
            v = [1000 * x[i] / steps for x in values]
            print(
                f"  {clock:4s} {name:9s} median {statistics.median(v):.3f} ms/step "
                f"(min {min(v):.3f}, max {max(v):.3f})"
            )
        pairs = [t[i] / w[i] for t, w in zip(results["timeline"], results["worker"], strict=True)]
        print(
            f"  {clock:4s} timeline / worker: median of rounds {statistics.median(pairs):.3f} "
            f"(min {min(pairs):.3f}, max {max(pairs):.3f})"
        )
    step = statistics.median(x[0] for x in results["worker"]) / steps
    print(
        f"  the per-batch work added (the timeline's batch hook, timed alone): "
        f"{1e6 * hook:.2f} us a step, {100 * hook / step:.3f}% of the worker's median step"
    )


if __name__ == "__main__":
    main()
