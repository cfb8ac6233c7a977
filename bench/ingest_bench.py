"""Metric ingest: concurrent writers doing a worker's recorder flush, against one COPY.

A fresh PostgreSQL database gets one job per writer. For each level of ``--writers``,
that many writer processes (each with its own engine, as each worker process has) call
:meth:`MetricStore.write` back to back for ``--seconds``: exactly what a recorder's flush
does, in one transaction the series-version bump, the bulk upsert of the buffered rows
and the rollup refresh of the blocks they touch. A flush holds ``--rows`` batch rows of 5
metrics at consecutive steps. ``--interval`` > 0 paces each writer to one flush per
interval instead (a recorder's default is 1 s).

In the same run, one writer sends the same number of rows with PostgreSQL's ``COPY``
(psycopg's ``cursor.copy``) into a job of its own: the ceiling. Printed per level: rows
per second, the ratio to COPY, flush p50/p99, and CPU seconds per second used by the
PostgreSQL server processes and by the writers, read from ``/proc/<pid>/stat``.
A level that needs more connections than the server allows is reported, not run.
Target: at 64 writers at least half of COPY's rows per second, flush p99 <= 250 ms.
Quick run: ``python bench/ingest_bench.py --writers 1,8 --seconds 5``. Usage:
    python bench/ingest_bench.py [--writers 1,8,64,256] [--seconds 10] [--rows 200]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text

from service.store import db
from service.store.db import get_engine
from service.store.jobs import JobStore
from service.store.metrics import MetricStore
from service.store.migrate import upgrade
from testbed.services import create_pg_database, drop_pg_database

NAMES = ("loss", "accuracy", "lr", "grad_norm", "throughput")  # 5 metrics a row


def rows_at(first: int, n: int) -> list[dict]:
    """``n`` batch rows from step ``first``, as a recorder buffers them."""
    now = time.time()
    return [
        {
            "kind": "batch",
            "step": s,
            "epoch": s // 1000,
            "batch": s % 1000,
            "attempt": 1,
            "logs": {
                "loss": 1.0 / (s + 1) ** 0.5,
                "accuracy": 1.0 - 1.0 / (s + 1) ** 0.5,
                "lr": 1e-3,
                "grad_norm": 0.5 + (s % 7) * 0.01,
                "throughput": 1000.0 + s % 13,
            },
            "wall_time": now,
        }
        for s in range(first, first + n)
    ]


def writer(url, job_id, rows, interval, start_at, stop_at, results, done) -> None:
    """One worker's recorder: flush ``rows`` rows per call until ``stop_at``."""
    for engine in list(db._engines.values()):  # the parent's: leave its connections alone
        engine.dispose(close=False)
    db._engines.clear()
    store = MetricStore(url)
    store.write(job_id, rows_at(0, 1))  # connect and warm the statement cache
    step, latencies = 1, []
    time.sleep(max(0.0, start_at - time.time()))
    cpu0 = time.process_time()
    nxt = time.time()
    while time.time() < stop_at:
        batch = rows_at(step, rows)
        t0 = time.perf_counter()
        store.write(job_id, batch)
        latencies.append(time.perf_counter() - t0)
        step += rows
        if interval > 0:
            nxt += interval
            time.sleep(max(0.0, nxt - time.time()))
    results.put((len(latencies) * rows, latencies, time.process_time() - cpu0))
    done.wait(120)  # keep the connection (and its server process) until CPU is read


def server_cpu() -> float:
    """CPU seconds used so far by every PostgreSQL server process on this machine."""
    tick, used = os.sysconf("SC_CLK_TCK"), 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                if not f.read().startswith("postgres"):
                    continue
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used += (int(fields[11]) + int(fields[12])) / tick
    return used


def free_connections(url: str) -> int:
    with get_engine(url).connect() as conn:
        limit = int(conn.execute(text("SHOW max_connections")).scalar())
        reserved = int(conn.execute(text("SHOW superuser_reserved_connections")).scalar())
        used = conn.execute(text("SELECT count(*) FROM pg_stat_activity")).scalar()
    return limit - reserved - used


def copy_rows(url: str, job_id: str, n: int) -> tuple[float, float]:
    """COPY ``n`` rows of the same shape into ``job_id``; (seconds, server CPU seconds)."""
    import psycopg

    rows = rows_at(0, n)
    with psycopg.connect(url.replace("+psycopg", "")) as conn:
        cpu0, t0 = server_cpu(), time.perf_counter()
        with (
            conn.cursor() as cur,
            cur.copy(
                "COPY metrics (job_id, kind, step, epoch, batch, attempt, logs, wall_time) "
                "FROM STDIN"
            ) as copy,
        ):
            for r in rows:
                copy.write_row(
                    (
                        job_id,
                        r["kind"],
                        r["step"],
                        r["epoch"],
                        r["batch"],
                        r["attempt"],
                        json.dumps(r["logs"]),
                        r["wall_time"],
                    )
                )
        conn.commit()
        return time.perf_counter() - t0, server_cpu() - cpu0


def level(url, jobs, n, args, ctx) -> dict:
    sep = "&" if "?" in url else "?"
    start_at = time.time() + 2.0 + n * 0.05  # every writer connected and warmed first
    stop_at = start_at + args.seconds
    results, done = ctx.Queue(), ctx.Event()
    procs = [
        ctx.Process(
            target=writer,
            args=(
                f"{url}{sep}application_name=ingest{i}",
                jobs[i],
                args.rows,
                args.interval,
                start_at,
                stop_at,
                results,
                done,
            ),
        )
        for i in range(n)
    ]
    for p in procs:
        p.start()
    time.sleep(max(0.0, start_at - time.time()))
    cpu0, load0 = server_cpu(), _load()
    got = [results.get(timeout=args.seconds + 120) for _ in procs]
    cpu1 = server_cpu()
    done.set()
    for p in procs:
        p.join(30)
    elapsed = max(args.seconds, time.time() - start_at)
    lat = sorted(x * 1000 for _, ls, _ in got for x in ls)
    q = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) > 1 else lat * 99
    total = sum(r for r, _, _ in got)
    return {
        "writers": n,
        "rows": total,
        "rows_per_s": total / elapsed,
        "flushes": len(lat),
        "p50_ms": q[49],
        "p99_ms": q[98],
        "db_cpu_per_s": (cpu1 - cpu0) / elapsed,
        "writers_cpu_per_s": sum(c for _, _, c in got) / elapsed,
        "load": f"{load0} -> {_load()}",
    }


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--writers", default="1,8,64,256", help="comma-separated levels")
    ap.add_argument("--seconds", type=float, default=10.0, help="per level")
    ap.add_argument("--rows", type=int, default=200, help="rows per flush")
    ap.add_argument("--interval", type=float, default=0.0, help="seconds between flushes")
    args = ap.parse_args()
    levels = [int(x) for x in args.writers.split(",")]
    ctx = mp.get_context("fork")
    url = create_pg_database()
    try:
        upgrade(url)
        store = JobStore(url)
        jobs = [
            store.create({"name": f"w{i}", "model": {}}, epochs=1, summary=None, max_attempts=1)[
                "id"
            ]
            for i in range(max(levels) * len(levels) + len(levels))
        ]
        print(f"# load average (1, 5, 15 min) at the start: {_load()}")
        print(
            f"# {args.rows} rows of {len(NAMES)} metrics a flush, "
            f"{'back to back' if args.interval <= 0 else f'one flush every {args.interval} s'}, "
            f"{args.seconds:g} s a level"
        )
        header = (
            f"{'writers':>7} {'rows/s':>9} {'COPY rows/s':>11} {'ratio':>6} {'p50 ms':>8} "
            f"{'p99 ms':>8} {'db CPU/s':>8} {'writers CPU/s':>13}  load average"
        )
        print(header)
        for k, n in enumerate(levels):
            free = free_connections(url)
            if n > free:
                print(
                    f"{n:>7} not run: {n} writers need {n} connections, the server has "
                    f"{free} free (max_connections)"
                )
                continue
            mine = jobs[k * max(levels) : k * max(levels) + n]
            r = level(url, mine, n, args, ctx)
            seconds, copy_cpu = copy_rows(url, jobs[-1 - k], r["rows"])
            copy_rate = r["rows"] / seconds
            print(
                f"{n:>7} {r['rows_per_s']:>9.0f} {copy_rate:>11.0f} "
                f"{r['rows_per_s'] / copy_rate:>6.3f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} "
                f"{r['db_cpu_per_s']:>8.2f} {r['writers_cpu_per_s']:>13.2f}  {r['load']}"
                f"  (COPY: {r['rows']} rows in {seconds:.2f} s, db CPU {copy_cpu:.2f} s)",
                flush=True,
            )
        print(f"# load average (1, 5, 15 min) at the end: {_load()}")
    finally:
        drop_pg_database(url)


if __name__ == "__main__":
    main()
