"""Dispatch: how fast the queue and the claim start jobs, on SQLite and on PostgreSQL.

Eight idle worker processes serve one queue on Redis. Each is a real Celery worker (solo
pool, late acks, prefetch 1: fitfleet's settings) running a stand-in for the training task
under its real name: it claims the job with the same guarded UPDATE, renews the lease with
the progress of a first batch (the moment a real worker would have trained one), and
finishes the job. No TensorFlow is loaded, so what is measured is the path from a submit to
a first batch, minus model building and data loading.

Two runs per database, side by side in one process:

- **trickle**: jobs submitted one every few milliseconds to an idle fleet; dispatch latency
  (submit to first batch) p50 and p99;
- **burst**: many jobs wait on the queue while the workers stop consuming it, then are
  released at once; jobs brought to their first batch per second. The rate of submits
  (row insert and enqueue, without the API's HTTP and validation) is printed too.

Usage:
    python bench/dispatch_bench.py [--jobs 400] [--trickle 150] [--workers 8]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

QUEUE = "bench"
REDIS = "redis://127.0.0.1:6379/13"


# -- the worker side ---------------------------------------------------------------------


def serve(hostname: str) -> None:
    """A Celery worker whose train task claims, reports a first batch and finishes."""
    from celery import Celery

    from service.core.celery_config import celery_config
    from service.core.config import get_settings
    from service.core.dispatch import TRAIN_TASK
    from service.store.jobs import JobStore

    settings = get_settings()
    app = Celery("fitfleet-bench", broker=settings.broker_url)
    app.conf.update(celery_config(settings.broker_url, settings.home))
    jobs = JobStore(settings.database_url)

    @app.task(name=TRAIN_TASK, acks_late=True, ignore_result=True)
    def train(job_id: str) -> str:
        claim = jobs.claim(job_id, hostname, 30.0)
        if claim is None:
            return "skipped"
        jobs.renew(
            job_id,
            claim.attempt_id,
            30.0,
            {"epoch": 0, "batch": 1, "step": 1, "steps_per_epoch": 1},
        )
        jobs.finish(job_id, claim.attempt_id, "succeeded")
        return "succeeded"

    app.worker_main(
        [
            "worker",
            "--pool",
            "solo",
            "--queues",
            QUEUE,
            "--hostname",
            hostname,
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
        ]
    )


# -- the driver --------------------------------------------------------------------------


def make_database(kind: str, folder: Path) -> tuple[str, callable]:
    from service.store.migrate import upgrade

    if kind == "sqlite":
        url = f"sqlite:///{folder / 'bench.db'}"
        upgrade(url)
        return url, lambda: None
    from testbed.services import create_pg_database, drop_pg_database

    url = create_pg_database("fitfleet_bench")
    upgrade(url)
    return url, lambda: drop_pg_database(url)


def start_workers(n: int, env: dict, logs: Path) -> list[subprocess.Popen]:
    procs = []
    for i in range(n):
        with open(logs / f"worker{i}.log", "wb") as log:
            procs.append(
                subprocess.Popen(
                    [sys.executable, __file__, "--serve", f"bench{i}@localhost"],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    return procs


def wait_ready(n: int, env: dict):
    from celery import Celery

    from service.core.celery_config import celery_config

    app = Celery("fitfleet-bench-ping", broker=env["CELERY_BROKER_URL"])
    app.conf.update(celery_config(env["CELERY_BROKER_URL"], env["FITFLEET_HOME"]))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if len(app.control.ping(timeout=1.0)) >= n:
            return app
    raise RuntimeError(f"{n} workers did not answer within 120 s")


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def submit(url: str, home: str, count: int, gap: float) -> list[str]:
    from service.core.dispatch import enqueue
    from service.store.jobs import JobStore

    store, ids = JobStore(url), []
    for _ in range(count):
        job = store.create(
            {"name": "bench", "queue": QUEUE}, epochs=1, summary=None, max_attempts=1
        )
        enqueue(REDIS, home, job["id"], QUEUE, 0)
        ids.append(job["id"])
        if gap:
            time.sleep(gap)
    return ids


def measure(url: str, ids: list[str], since=None, timeout: float = 300) -> dict:
    """Wait for every job to succeed; latencies, and the rate of first batches after
    ``since`` (default: the first submit), from the database."""
    from sqlalchemy import func, select

    from service.store.db import session_scope
    from service.store.tables import Attempt, Job

    deadline = time.monotonic() + timeout
    while True:
        with session_scope(url) as s:
            done = s.scalar(
                select(func.count())
                .select_from(Job)
                .where(Job.id.in_(ids), Job.state == "succeeded")
            )
        if done == len(ids):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {done}/{len(ids)} jobs finished")
        time.sleep(0.2)
    with session_scope(url) as s:
        rows = s.execute(
            select(Job.created_at, Attempt.started_at, Attempt.heartbeat_at)
            .join(Attempt, Attempt.job_id == Job.id)
            .where(Job.id.in_(ids))
        ).all()
    first_batch = sorted((hb - created).total_seconds() for created, _, hb in rows)
    span = (max(hb for *_, hb in rows) - (since or min(c for c, *_ in rows))).total_seconds()
    return {
        "p50_ms": 1000 * statistics.median(first_batch),
        "p99_ms": 1000 * first_batch[min(len(first_batch) - 1, int(0.99 * len(first_batch)))],
        "jobs_per_s": len(rows) / span if span > 0 else float("inf"),
    }


def run_backend(kind: str, args) -> dict:
    import redis

    from service.store.tables import utcnow

    redis.Redis.from_url(REDIS).flushdb()
    with tempfile.TemporaryDirectory(prefix=f"bench-{kind}-") as tmp:
        folder = Path(tmp)
        url, drop = make_database(kind, folder)
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "CELERY_BROKER_URL": REDIS,
            "FITFLEET_HOME": str(folder),
            "FITFLEET_STORAGE_URL": (folder / "s").as_uri(),
        }
        procs = start_workers(args.workers, env, folder)
        try:
            control = wait_ready(args.workers, env).control
            measure(url, submit(url, str(folder), args.workers, 0.0))  # warm-up
            trickle = measure(url, submit(url, str(folder), args.trickle, args.gap))
            # Burst: the jobs wait on the queue while the workers stop consuming it, then
            # all are released at once: what the queue and the claim can start per second.
            control.cancel_consumer(QUEUE, reply=True, timeout=5)
            started = time.perf_counter()
            ids = submit(url, str(folder), args.jobs, 0.0)
            submit_rate = args.jobs / (time.perf_counter() - started)
            released = utcnow()
            control.add_consumer(QUEUE, reply=True, timeout=5)
            burst = measure(url, ids, since=released)
        finally:
            stop(procs)
            drop()
    return {
        "trickle_p50_ms": trickle["p50_ms"],
        "trickle_p99_ms": trickle["p99_ms"],
        "burst_jobs_per_s": burst["jobs_per_s"],
        "submit_per_s": submit_rate,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", metavar="HOSTNAME", help=argparse.SUPPRESS)
    parser.add_argument("--jobs", type=int, default=400, help="jobs in the burst")
    parser.add_argument("--trickle", type=int, default=150, help="jobs in the trickle")
    parser.add_argument("--gap", type=float, default=0.02, help="seconds between trickle jobs")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    kinds = args.backends.split(",")
    rounds = {kind: [] for kind in kinds}
    for _ in range(args.rounds):  # interleaved, so that a busy spell hits both backends
        for kind in kinds:
            rounds[kind].append(run_backend(kind, args))
    results = {
        kind: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        for kind, runs in rounds.items()
    }
    print(
        f"median of {args.rounds} interleaved rounds, {args.workers} workers, "
        f"{args.jobs} jobs a burst, {args.trickle} a trickle"
    )
    keys = list(next(iter(results.values())))
    print(f"{'':22}" + "".join(f"{k:>14}" for k in results))
    for key in keys:
        print(f"{key:22}" + "".join(f"{r[key]:14.1f}" for r in results.values()))
    if {"sqlite", "postgresql"} <= set(results):
        s, p = results["sqlite"], results["postgresql"]
        print(
            f"\nsqlite/postgresql: burst jobs/s {s['burst_jobs_per_s'] / p['burst_jobs_per_s']:.2f}"
            f", trickle p50 {s['trickle_p50_ms'] / p['trickle_p50_ms']:.2f}"
            f", trickle p99 {s['trickle_p99_ms'] / p['trickle_p99_ms']:.2f}"
        )


if __name__ == "__main__":
    main()
