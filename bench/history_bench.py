"""History that grows: poll cost at 10^5 .. 10^7 rows of one job, and over many jobs.

One fresh PostgreSQL database. For each of ``--sizes``, a new job gets that many batch
rows (``generate_series``, a loss spike at 61% of the run) and its rollups, built by the
store itself (:meth:`MetricStore.rebuild`, the same refresh a write runs). Then
``--jobs`` jobs of ``--job-rows`` rows each: one template job built the same way, its
rows, rollups and series copied to the others in ``INSERT ... SELECT`` (the same values,
so the same rollups). Every job stays in the table while the next sizes are measured.

Each case is polled ``--polls`` times, sequentially, in process through
:meth:`MetricStore.read` (the database work of a poll; no HTTP, no authentication):

- ``incremental``: ``after`` 50 steps before the end (a poller a second behind a writer
  of 50 rows a second);
- ``max_points=500``: the whole history downsampled, as a dashboard's first load.

In the many-jobs case every poll asks for a random job. Prints a table of p50/p99 per
case, with the load average. The curve should be flat. Quick run:
``python bench/history_bench.py --sizes 100000 --jobs 20 --job-rows 1000``. Usage:
    python bench/history_bench.py [--sizes 100000,1000000] [--jobs 1000] [--job-rows 10000]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text

from service.store.db import get_engine
from service.store.jobs import JobStore
from service.store.metrics import MetricStore
from service.store.migrate import upgrade
from service.store.tables import Job
from testbed.services import create_pg_database, drop_pg_database

ROWS_SQL = (
    "INSERT INTO metrics (job_id, kind, step, epoch, batch, attempt, logs, wall_time) "
    "SELECT :job, 'batch', s, (s - 1) / 1000, (s - 1) % 1000, 1, json_build_object("
    "'loss', CASE WHEN s = :spike THEN 50.0 ELSE 1.0 / sqrt(s) + (s % 17) * 0.001 END, "
    "'accuracy', 1.0 - 1.0 / sqrt(s)), 1.7e9 + s * 0.01 "
    "FROM generate_series(1, :rows) AS s"
)


def new_job(url: str, name: str) -> str:
    return JobStore(url).create(
        {"name": name, "model": {}}, epochs=1, summary=None, max_attempts=1, project="bench"
    )["id"]


def one_job(url: str, rows: int) -> str:
    """A job with ``rows`` batch rows and the rollups the store builds for them."""
    job_id = new_job(url, f"rows{rows}")
    with get_engine(url).begin() as conn:
        conn.execute(text(ROWS_SQL), {"job": job_id, "rows": rows, "spike": int(rows * 0.61)})
        conn.execute(text("ANALYZE metrics"))
    MetricStore(url).rebuild(job_id, "batch")
    return job_id


def many_jobs(url: str, jobs: int, rows: int) -> list[str]:
    """``jobs`` jobs of ``rows`` rows: one built by the store, its data copied to the rest."""
    template = one_job(url, rows)
    others = [c.name for c in Job.__table__.columns if c.name != "id"]
    cols = ", ".join(others)
    copies = {
        "metrics": "kind, step, epoch, batch, attempt, logs, wall_time",
        "metric_rollups": "kind, level, start, first_step, last_step, rows, stats",
        "metric_series": "kind, version, updated_at, rows_rejected, rejected_reason",
    }
    with get_engine(url).begin() as conn:
        conn.execute(
            text(
                f"INSERT INTO jobs (id, {cols}) SELECT md5(:t || g::text), {cols} "
                "FROM jobs, generate_series(2, :n) AS g WHERE id = :t"
            ),
            {"t": template, "n": jobs},
        )
        for table, columns in copies.items():
            conn.execute(
                text(
                    f"INSERT INTO {table} (job_id, {columns}) "
                    f"SELECT md5(:t || g::text), {columns} "
                    f"FROM {table}, generate_series(2, :n) AS g WHERE job_id = :t"
                ),
                {"t": template, "n": jobs},
            )
        conn.execute(text("ANALYZE"))
    return [template] + [_md5(template + str(g)) for g in range(2, jobs + 1)]


def _md5(s: str) -> str:
    import hashlib

    return hashlib.md5(s.encode()).hexdigest()


def polls(url: str, jobs: list[str], last: int, n: int) -> dict[str, tuple[float, float]]:
    """p50/p99 in ms of ``n`` incremental and ``n`` downsampled reads, interleaved."""
    store, rnd = MetricStore(url), random.Random(1)
    times: dict[str, list[float]] = {"incremental": [], "max_points=500": []}
    for _ in range(n):
        job = rnd.choice(jobs)
        t0 = time.perf_counter()
        body = store.read(job, "batch", after=last - 50)
        times["incremental"].append(time.perf_counter() - t0)
        assert len(body["rows"]) == 50, len(body["rows"])
        t0 = time.perf_counter()
        body = store.read(job, "batch", max_points=500)
        times["max_points=500"].append(time.perf_counter() - t0)
        assert body["downsampled"] and len(body["rows"]) <= 500
    out = {}
    for mode, ts in times.items():
        q = statistics.quantiles([t * 1000 for t in ts], n=100, method="inclusive")
        out[mode] = (q[49], q[98])
    return out


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000,1000000", help="rows of one job, comma-separated")
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--job-rows", type=int, default=10_000)
    ap.add_argument("--polls", type=int, default=200, help="of each kind, per case")
    args = ap.parse_args()
    url = create_pg_database()
    try:
        upgrade(url)
        print(f"# load average (1, 5, 15 min) at the start: {_load()}")
        print(
            f"{'case':<24} {'fill s':>7} {'incr p50':>9} {'incr p99':>9} "
            f"{'max500 p50':>10} {'max500 p99':>10}  load average"
        )
        cases = [(f"1 job x {int(s):,} rows", int(s), 1) for s in args.sizes.split(",") if s]
        if args.jobs:
            cases.append((f"{args.jobs:,} jobs x {args.job_rows:,}", args.job_rows, args.jobs))
        for name, rows, jobs in cases:
            t0 = time.perf_counter()
            ids = [one_job(url, rows)] if jobs == 1 else many_jobs(url, jobs, rows)
            fill = time.perf_counter() - t0
            got = polls(url, ids, rows, args.polls)
            (i50, i99), (m50, m99) = got["incremental"], got["max_points=500"]
            print(
                f"{name:<24} {fill:>7.1f} {i50:>9.2f} {i99:>9.2f} {m50:>10.2f} {m99:>10.2f}"
                f"  {_load()}",
                flush=True,
            )
        print(f"# ms per read, {args.polls} of each kind per case, sequential, in process")
        print(f"# load average (1, 5, 15 min) at the end: {_load()}")
    finally:
        drop_pg_database(url)


if __name__ == "__main__":
    main()
