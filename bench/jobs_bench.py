"""Many jobs: the job list and the fleet view's queries with 10,000 jobs, 1,000 running.

A fresh PostgreSQL database holds ``--jobs`` jobs copied from one made as the API makes
it; ``--running`` of them are claimed by ``--workers`` workers that report themselves
to the fleet, as real workers do, ``--queued`` wait, and the rest have finished. Then, sequentially and in process (the database side
of a dashboard poll; no HTTP, no authentication, no broker), ``--polls`` times each:

- the job list's first page (``JobStore.list``, 20 jobs, newest first);
- the fleet view's database reads (``FleetStore.workers`` and ``FleetStore.job_counts``).

Prints p50/p99 of each, the load average, and PostgreSQL's plan of the fleet view's
job count, which should read an index, not scan the jobs table. With ``--pollers``, that
many dashboards (half on the job list, half on the fleet view, one request a second
each) then poll the API served as ``fitfleet api`` serves it, for ``--seconds``. Quick run:
``python bench/jobs_bench.py --jobs 500 --running 50 --polls 50``. Usage:
    python bench/jobs_bench.py [--jobs 10000] [--running 1000] [--queued 1000]
        [--workers 100]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text

from service.store.db import get_engine
from service.store.fleet import FleetStore
from service.store.jobs import JobStore
from service.store.migrate import upgrade
from service.store.tables import Job
from service.store.tokens import TokenStore
from testbed.services import create_pg_database, drop_pg_database, free_port


def fill(url: str, jobs: int, running: int, queued: int, workers: int) -> None:
    upgrade(url)
    store = JobStore(url)
    template = store.create({"name": "many", "model": {}}, epochs=1, summary=None, max_attempts=3)[
        "id"
    ]
    others = [c.name for c in Job.__table__.columns if c.name != "id"]
    cols = ", ".join(others)
    with get_engine(url).begin() as conn:
        conn.execute(
            text(
                f"INSERT INTO jobs (id, {cols}) SELECT md5(:t || g::text), {cols} "
                "FROM jobs, generate_series(2, :n) AS g WHERE id = :t"
            ),
            {"t": template, "n": jobs},
        )
        ids = conn.execute(text("SELECT id FROM jobs ORDER BY id LIMIT :n"), {"n": running})
        ids = ids.scalars().all()
        # the history: all but the running and ``queued`` newest jobs have finished
        conn.execute(
            text(
                "UPDATE jobs SET state = 'succeeded', finished_at = created_at "
                "WHERE id NOT IN (SELECT id FROM jobs ORDER BY id LIMIT :r) AND id NOT IN "
                "(SELECT id FROM jobs ORDER BY created_at DESC, id DESC LIMIT :q)"
            ),
            {"r": running, "q": queued},
        )
    fleet = FleetStore(url)
    for i, job_id in enumerate(ids):
        assert store.claim(job_id, f"w{i % workers}", 600) is not None
    for w in range(workers):  # one job each shown on its row, as a busy worker reports
        fleet.report(
            f"w{w}",
            hostname="bench",
            pid=os.getpid(),
            queues=["default"],
            state="busy",
            job_id=ids[w] if w < len(ids) else None,
        )
    with get_engine(url).begin() as conn:
        conn.execute(text("ANALYZE"))


async def _poller(port, token, path: str, stop_at: float, seconds: float, out: list) -> None:
    """One dashboard: one request a second on its own keep-alive connection."""
    from poll_bench import _exchange

    loop = asyncio.get_running_loop()
    await asyncio.sleep(random.random())
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    while loop.time() < stop_at:
        tick = loop.time() + 1.0
        t0 = time.perf_counter()
        status, _, _ = await _exchange(reader, writer, path, {"Authorization": f"Bearer {token}"})
        if loop.time() >= stop_at - seconds + 2.0:  # the first 2 s left out (connecting)
            out.append((path, time.perf_counter() - t0, status))
        await asyncio.sleep(max(0.0, tick - loop.time()))
    writer.close()


async def _dashboards(port: int, token: str, pollers: int, seconds: float) -> list:
    stop_at = asyncio.get_running_loop().time() + seconds
    out: list = []
    paths = ["/api/v1/jobs?limit=20", "/api/v1/fleet"]
    await asyncio.gather(
        *(_poller(port, token, paths[i % 2], stop_at, seconds, out) for i in range(pollers))
    )
    return out


def over_http(url: str, pollers: int, seconds: float) -> None:
    """``pollers`` dashboards through the API (gunicorn, 2 processes), half on each view."""
    import subprocess
    import uuid

    from poll_bench import start_api

    home = Path(f"/tmp/fitfleet-jobs-bench-{uuid.uuid4().hex[:8]}")
    home.mkdir(parents=True)
    token = TokenStore(url).create("bench", admin=True)[1]
    port = free_port()
    proc = start_api(url, home, port)
    try:
        got = asyncio.run(_dashboards(port, token, pollers, seconds))
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
    for path in ("/api/v1/jobs?limit=20", "/api/v1/fleet"):
        lat = sorted(t * 1000 for p, t, _ in got if p == path)
        bad = sum(1 for p, _, st in got if p == path and st != 200)
        q = statistics.quantiles(lat, n=100, method="inclusive")
        print(
            f"HTTP {path:<30} {len(lat):>5} requests  p50 {q[49]:7.1f} ms  p99 {q[98]:7.1f} ms"
            f"  non-200 {bad}  load {_load()}",
            flush=True,
        )


def timed(fn, n: int) -> tuple[float, float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    q = statistics.quantiles(out, n=100, method="inclusive")
    return q[49], q[98]


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--running", type=int, default=1000)
    ap.add_argument("--queued", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=100)
    ap.add_argument("--polls", type=int, default=200)
    ap.add_argument("--pollers", type=int, default=0, help="dashboards over HTTP (0: none)")
    ap.add_argument("--seconds", type=float, default=20.0, help="of the HTTP phase")
    args = ap.parse_args()
    url = create_pg_database()
    try:
        t0 = time.perf_counter()
        fill(url, args.jobs, args.running, args.queued, args.workers)
        print(
            f"# {args.jobs} jobs, {args.running} running on {args.workers} workers, "
            f"{args.queued} queued, the rest finished, "
            f"in {time.perf_counter() - t0:.1f} s; load average {_load()}"
        )
        jobs, fleet = JobStore(url), FleetStore(url)
        cases = {
            "job list, first page of 20": lambda: jobs.list(None, 20, None),
            "fleet view (workers + job counts)": lambda: (fleet.workers(30.0), fleet.job_counts()),
        }
        for name, fn in cases.items():
            p50, p99 = timed(fn, args.polls)
            print(f"{name:<36} p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  load {_load()}", flush=True)
        with get_engine(url).connect() as conn:
            plan = conn.execute(
                text(
                    "EXPLAIN SELECT queue, state, count(*) FROM jobs "
                    "WHERE state IN ('queued', 'running') GROUP BY queue, state"
                )
            ).scalars()
            print("# plan of the fleet view's job count:")
            for line in plan:
                print("#   " + line)
        if args.pollers:
            over_http(url, args.pollers, args.seconds)
    finally:
        drop_pg_database(url)


if __name__ == "__main__":
    main()
