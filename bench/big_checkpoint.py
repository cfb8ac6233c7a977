"""What a checkpoint of a big model costs the worker: memory, blocked time, bytes sent.

A model of ``--params`` parameters (default 100M: four Dense layers) trained with Adam,
in batches of 8 on random data; every ``--every`` steps the training thread takes a
snapshot (``checkpoint.take``) and hands it to the real background saver
(``workers.training.resume.saver.Saver``: write the ``.keras`` file, upload it, commit the
row on SQLite, prune to the last one). A thread samples the process's resident memory
every 10 ms. Then the newest checkpoint is restored into a fresh model the way a
resumed attempt does (download, verify, load). Prints:

- the bare step time (median of the steps with no save in flight), the step time while a
  save runs beside training, and the seconds the training thread was blocked per
  checkpoint, with that as a share of a bare step at a checkpoint every 500 steps
  (target: at most 5%);
- resident memory before the first checkpoint, its peak while checkpoints were taken and
  written, and the extra against one copy of the weights and optimizer state (target:
  at most one copy);
- bytes sent per checkpoint and seconds to write, upload and commit it;
- the restore's seconds and peak extra memory.

``--store s3`` uploads to a moto S3 server started for the run (multipart, 64 MiB parts);
the default is a local directory. Small and quick: ``--params 2000000 --every 5``.
Usage:
    python bench/big_checkpoint.py [--params 100000000] [--every 20] [--checkpoints 3]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import keras
import numpy as np

from service.storage import open_store
from service.store.jobs import JobStore
from service.store.leases import Claim
from service.store.migrate import upgrade
from workers.training.resume import checkpoint
from workers.training.resume.saver import Saver
from workers.training.runner import restore

BATCH, LAYERS = 8, 4
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * PAGE


class Sampler(threading.Thread):
    """The peak resident memory since the last :meth:`reset`, sampled every 10 ms."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak, self.stop = rss(), threading.Event()

    def reset(self) -> int:
        self.peak = rss()
        return self.peak

    def run(self):
        while not self.stop.wait(0.01):
            self.peak = max(self.peak, rss())


def make_model(params: int):
    width = int(math.sqrt(params / LAYERS))
    model = keras.Sequential(
        [keras.Input((width,))] + [keras.layers.Dense(width) for _ in range(LAYERS)]
    )
    model.compile(optimizer="adam", loss="mse")
    return model, width


class Steps(keras.callbacks.Callback):
    """Times each step; every ``every`` steps takes a snapshot and submits it."""

    def __init__(self, saver: Saver, every: int):
        super().__init__()
        self.saver, self.every = saver, every
        self.step, self.started = 0, None
        self.bare, self.beside, self.blocked, self.waited = [], [], [], []

    def on_train_batch_begin(self, batch, logs=None):
        self.started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        took = time.perf_counter() - self.started
        busy = self.saver.drain(timeout=0) is False  # a save in flight beside this step
        (self.beside if busy else self.bare).append(took)
        self.step += 1
        if self.step % self.every == 0:
            t0 = time.perf_counter()
            took = []

            def take():
                took.append(time.perf_counter())
                return checkpoint.take(
                    self.model, step=self.step, epoch=0, batch=self.step, callbacks=[], logs=logs
                )

            self.saver.submit(take)
            self.blocked.append(time.perf_counter() - t0)
            self.waited.append(took[0] - t0)


def start_moto(tmp: Path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp / "moto.log", "wb")  # noqa: SIM115 - open for the server's lifetime
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    os.environ.update(
        AWS_ENDPOINT_URL_S3=f"http://127.0.0.1:{port}",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
    )
    import boto3

    for _ in range(200):
        try:
            boto3.client("s3").create_bucket(Bucket="bench")
            return proc, "s3://bench/big"
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.1)
    raise RuntimeError("moto server did not start")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--params", type=int, default=100_000_000)
    parser.add_argument("--every", type=int, default=20)
    parser.add_argument("--checkpoints", type=int, default=3)
    parser.add_argument("--store", choices=["local", "s3"], default="local")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fitfleet-big-"))
    moto = None
    try:
        if args.store == "s3":
            moto, store_url = start_moto(tmp)
        else:
            store_url = (tmp / "store").as_uri()
        run(args, tmp, store_url)
    finally:
        if moto is not None:
            moto.terminate()
            moto.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


def run(args, tmp: Path, store_url: str) -> None:
    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    url = f"sqlite:///{tmp / 'bench.db'}"
    upgrade(url)
    jobs = JobStore(url)
    job = jobs.create({"model": {}, "fit": {}}, epochs=1, summary=None, max_attempts=1)
    claim = jobs.claim(job["id"], "bench", 3600)
    store = open_store(store_url)
    model, width = make_model(args.params)
    steps = args.every * args.checkpoints + args.every // 2
    rng = np.random.default_rng(0)
    x = rng.normal(size=(BATCH * 4, width)).astype("float32")
    model.fit(x[:BATCH], x[:BATCH], batch_size=BATCH, epochs=1, verbose=0)  # build, warm up
    state_bytes = sum(v.numpy().nbytes for v in model.weights + model.optimizer.variables)
    saver = Saver(
        jobs=jobs,
        store=store,
        job_id=job["id"],
        attempt_id=claim.attempt_id,
        attempt=claim.number,
        keep_last=1,
        scratch=tmp / "scratch",
    )
    sampler = Sampler()
    sampler.start()
    base = sampler.reset()
    timer = Steps(saver, args.every)
    data = np.resize(x, (steps * BATCH, width))
    model.fit(data, data, batch_size=BATCH, epochs=1, verbose=0, shuffle=False, callbacks=[timer])
    saver.close()
    peak = sampler.peak
    rows = jobs.checkpoints(job["id"], include_deleted=True)
    sent = [r["bytes"] for r in rows]
    seconds = list(saver.seconds)
    timer.saver = saver = None
    fresh, _ = make_model(args.params)
    fresh.fit(x[:BATCH], x[:BATCH], batch_size=BATCH, epochs=1, verbose=0)
    restore_base = sampler.reset()
    t0 = time.perf_counter()
    latest = jobs.checkpoints(job["id"])[-1:]
    step, _ = restore(fresh, Claim(job["id"], 0, 2, {}, latest), tmp / "restore")
    restore_s = time.perf_counter() - t0
    restore_peak = sampler.peak
    sampler.stop.set()
    assert step == latest[0]["step"], (step, latest)
    for a, b in zip(model.weights, fresh.weights, strict=True):
        assert a.shape == b.shape

    bare = statistics.median(timer.bare)
    beside = statistics.median(timer.beside) if timer.beside else float("nan")
    blocked = statistics.median(timer.blocked)
    mib = 1 << 20
    print(
        f"{model.count_params():,} parameters ({LAYERS} Dense of {width}), Adam, batch {BATCH}; "
        f"weights + optimizer {state_bytes / mib:,.0f} MiB; store {args.store}; "
        f"{len(sent)} checkpoints, one every {args.every} steps; "
        f"load average {load_before} before, "
        + " ".join(Path("/proc/loadavg").read_text().split()[:3])
        + " after"
    )
    print(f"  bare step                  {bare * 1000:9.1f} ms (median of {len(timer.bare)})")
    print(f"  step beside a save         {beside * 1000:9.1f} ms (median of {len(timer.beside)})")
    print(
        f"  training thread blocked    {blocked * 1000:9.1f} ms a checkpoint "
        f"({', '.join(f'{b * 1000:.0f}' for b in timer.blocked)})"
    )
    print(
        "    of which waiting for the save before: "
        + ", ".join(f"{b * 1000:.0f}" for b in timer.waited)
        + " ms"
    )
    print(f"  blocked / (500 bare steps) {blocked / (500 * bare) * 100:9.2f} %  (target <= 5%)")
    print(f"  resident before            {base / mib:9,.0f} MiB")
    print(f"  resident peak              {peak / mib:9,.0f} MiB")
    print(f"  extra / one copy of state  {(peak - base) / state_bytes:9.2f}  (target <= 1.00)")
    print(
        f"  bytes sent a checkpoint    {statistics.median(sent) / mib:9,.0f} MiB; write, upload, "
        f"commit {', '.join(f'{s:.1f}' for s in seconds)} s"
    )
    print(
        f"  restore                    {restore_s:9.1f} s; extra resident "
        f"{(restore_peak - restore_base) / state_bytes:.2f} of one copy"
    )
    print(json.dumps({"bare_ms": bare * 1000, "blocked_ms": blocked * 1000}))


if __name__ == "__main__":
    main()
