"""Claims at scale: ``--jobs`` queued jobs, ``--workers`` claim-only workers, no job twice.

A fresh PostgreSQL database holds ``--jobs`` queued jobs. Their ids are delivered to the
workers (threads, each with its own engine and connection) through one in-process queue;
every id is delivered ``--deliveries`` times, as a broker that redelivers would. Each
worker calls :func:`claim_one` for every id it gets; only the first claim of a job may
win. Prints claims per second, claim latency p50/p99, the load average before and after,
and checks that every job was claimed exactly once: one winner per id, one attempt
row per job, and each job running under the worker that won it.

:func:`claim_one` is the only place that claims. A scheduler that picks the most
deserving job of a queue instead of the delivered one replaces that function alone.
Quick run: ``python bench/claim_bench.py --jobs 500 --workers 8``. Usage:
    python bench/claim_bench.py [--jobs 10000] [--workers 64] [--deliveries 2]
"""

from __future__ import annotations

import argparse
import os
import queue
import statistics
import sys
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select, text

from service.store.db import get_engine, session_scope
from service.store.jobs import JobStore
from service.store.migrate import upgrade
from service.store.tables import Attempt, Job
from testbed.services import create_pg_database, drop_pg_database


def claim_one(jobs: JobStore, job_id: str, worker: str) -> bool:
    """One claim as a worker makes it; True if this worker won the job."""
    return jobs.claim(job_id, worker, 600) is not None


def fill(url: str, n: int) -> list[str]:
    """One job made as the API makes it, copied ``n - 1`` times in one INSERT ... SELECT."""
    upgrade(url)
    template = JobStore(url).create(
        {"name": "claim", "model": {}}, epochs=1, summary=None, max_attempts=3
    )["id"]
    others = [c.name for c in Job.__table__.columns if c.name != "id"]
    cols = ", ".join(others)
    with get_engine(url).begin() as conn:
        conn.execute(
            text(
                f"INSERT INTO jobs (id, {cols}) SELECT md5(:t || g::text), {cols} "
                "FROM jobs, generate_series(2, :n) AS g WHERE id = :t"
            ),
            {"t": template, "n": n},
        )
        conn.execute(text("ANALYZE jobs"))
        ids = conn.execute(text("SELECT id FROM jobs ORDER BY created_at, id")).scalars().all()
    return list(ids)


def work(jobs: JobStore, name: str, inbox: queue.Queue, won: list, latency: list) -> None:
    while True:
        job_id = inbox.get()
        if job_id is None:
            return
        t0 = time.perf_counter()
        if claim_one(jobs, job_id, name):
            won.append((job_id, name))
        latency.append(time.perf_counter() - t0)


def check(url: str, ids: list[str], won: list) -> None:
    winners = Counter(job_id for job_id, _ in won)
    twice = [j for j, n in winners.items() if n > 1]
    assert not twice, f"{len(twice)} jobs claimed twice"
    assert len(winners) == len(ids), f"{len(ids) - len(winners)} jobs never claimed"
    owner = dict(won)
    with session_scope(url) as s:
        attempts = dict(
            s.execute(select(Attempt.job_id, func.count()).group_by(Attempt.job_id)).all()
        )
        held = dict(s.execute(select(Job.id, Job.worker).where(Job.state == "running")).all())
    assert all(attempts.get(j) == 1 for j in ids), "a job has more than one attempt row"
    assert held == owner, "a job runs under a worker that did not win it"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=64)
    ap.add_argument("--deliveries", type=int, default=2)
    args = ap.parse_args()
    url = create_pg_database()
    try:
        t0 = time.perf_counter()
        ids = fill(url, args.jobs)
        print(f"# {args.jobs} queued jobs in {time.perf_counter() - t0:.1f} s")
        load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
        # a worker process has its own engine: one per thread here (the URLs differ only
        # in application_name, so each gets its own pool)
        sep = "&" if "?" in url else "?"
        stores = [JobStore(f"{url}{sep}application_name=w{i}") for i in range(args.workers)]
        inbox: queue.Queue = queue.Queue()
        for _ in range(args.deliveries):
            for job_id in ids:
                inbox.put(job_id)
        for _ in range(args.workers):
            inbox.put(None)
        won: list = []
        latency: list = []
        threads = [
            threading.Thread(target=work, args=(stores[i], f"w{i}", inbox, won, latency))
            for i in range(args.workers)
        ]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        took = time.perf_counter() - t0
        check(url, ids, won)
        q = statistics.quantiles(latency, n=100)
        load_after = " ".join(f"{x:.1f}" for x in os.getloadavg())
        print(
            f"{args.workers} workers, {len(latency)} claim calls ({args.deliveries} deliveries a "
            f"job) in {took:.1f} s: {len(won) / took:.0f} jobs claimed/s, "
            f"{len(latency) / took:.0f} calls/s; p50 {q[49] * 1000:.1f} ms, "
            f"p99 {q[98] * 1000:.1f} ms; every job claimed exactly once; "
            f"load average {load_before} before, {load_after} after"
        )
    finally:
        drop_pg_database(url)


if __name__ == "__main__":
    main()
