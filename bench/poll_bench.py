"""Metric polling under load: many dashboards polling one job with a million batch rows.

Sets up a fresh PostgreSQL database holding one job with ``--rows`` batch rows (and their
rollups), serves the API with gunicorn exactly as ``fitfleet api`` does (2 processes,
authentication on, a Bearer token on every request), and keeps a writer appending 50 rows
a second, as a training worker flushes them. Then ``--pollers`` clients, each one request
a second on its own keep-alive connection, poll for ``--seconds`` in two phases:

- ``incremental``: ``?kind=batch&after=<cursor>`` with ``If-None-Match`` (200 or 304);
- ``max_points=500``: ``?kind=batch&max_points=500``, the downsampled whole history.

A third, sequential phase measures the downsampled answer with nothing cached (a write
before each request). Prints p50/p99/max latency per phase, seen by the client.
Targets: incremental p99 < 50 ms, downsampled p99 < 150 ms. Usage:
    python bench/poll_bench.py [--rows 1000000] [--pollers 200] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import text

from service.store.db import get_engine
from service.store.jobs import JobStore
from service.store.metrics import MetricStore
from service.store.migrate import upgrade
from service.store.tokens import TokenStore
from testbed.services import create_pg_database, drop_pg_database, free_port

WARMUP = 2.0  # seconds of each phase left out of the figures


def fill(url: str, rows: int) -> str:
    """A job with ``rows`` batch rows (a loss spike at 61% of the run) and epoch rows."""
    upgrade(url)
    job_id = JobStore(url).create(
        {"name": "bench", "model": {}}, epochs=1000, summary=None, max_attempts=3, project="bench"
    )["id"]
    with get_engine(url).begin() as conn:
        conn.execute(
            text(
                "INSERT INTO metrics (job_id, kind, step, epoch, batch, attempt, logs, wall_time) "
                "SELECT :job, 'batch', s, (s - 1) / 1000, (s - 1) % 1000, 1, json_build_object("
                "'loss', CASE WHEN s = :spike THEN 50.0 ELSE 1.0 / sqrt(s) + random() * 0.01 END, "
                "'accuracy', 1.0 - 1.0 / sqrt(s)), 1.7e9 + s * 0.01 "
                "FROM generate_series(1, :rows) AS s"
            ),
            {"job": job_id, "rows": rows, "spike": int(rows * 0.61)},
        )
        conn.execute(
            text(
                "INSERT INTO metrics (job_id, kind, step, epoch, batch, attempt, logs, wall_time) "
                "SELECT :job, 'epoch', e * 1000, e - 1, NULL, 1, json_build_object("
                "'loss', 1.0 / sqrt(e), 'val_loss', 1.1 / sqrt(e)), 1.7e9 + e * 10 "
                "FROM generate_series(1, :epochs) AS e"
            ),
            {"job": job_id, "epochs": rows // 1000},
        )
        conn.execute(text("ANALYZE metrics"))
    metrics = MetricStore(url)
    metrics.rebuild(job_id, "batch")
    metrics.rebuild(job_id, "epoch")
    return job_id


class Writer(threading.Thread):
    """Appends ``per_second`` batch rows every second, like a training worker's flushes."""

    def __init__(self, url: str, job_id: str, first_step: int, per_second: int = 50):
        super().__init__(daemon=True)
        self.metrics, self.job_id = MetricStore(url), job_id
        self.step, self.per_second = first_step, per_second
        self.stop = threading.Event()

    def run(self):
        while not self.stop.wait(1.0):
            rows = [
                {
                    "kind": "batch",
                    "step": s,
                    "epoch": s // 1000,
                    "batch": s % 1000,
                    "attempt": 1,
                    "logs": {"loss": 0.01, "accuracy": 0.99},
                    "wall_time": time.time(),
                }
                for s in range(self.step, self.step + self.per_second)
            ]
            self.metrics.write(self.job_id, rows)
            self.step += self.per_second


def start_api(url: str, home: Path, port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "FITFLEET_HOME": str(home),
        "FITFLEET_AUTH": "on",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/12",
        "FITFLEET_LOG_LEVEL": "WARNING",
    }
    log = open(home / "api.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fitfleet",
            "api",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "2",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the API did not start; see " + str(home / "api.log"))


async def _exchange(reader, writer, path: str, headers: dict) -> tuple[int, dict, bytes]:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1"] + [f"{k}: {v}" for k, v in headers.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    got = {}
    for line in header_lines:
        if ":" in line:
            k, v = line.split(":", 1)
            got[k.strip().lower()] = v.strip()
    length = int(got.get("content-length", "0"))
    body = await reader.readexactly(length) if length else b""
    return int(status_line.split()[1]), got, body


async def poller(
    port: int, token: str, job_id: str, mode: str, start_after: int, stop_at: float, out: list
) -> None:
    """One dashboard: one request a second on one keep-alive connection."""
    loop = asyncio.get_running_loop()
    await asyncio.sleep(random.random())  # pollers do not tick in step
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    after, etag = start_after, None
    auth = {"Authorization": f"Bearer {token}"}
    while loop.time() < stop_at:
        tick = loop.time() + 1.0
        if mode == "incremental":
            path = f"/api/v1/jobs/{job_id}/metrics?kind=batch&after={after}"
            headers = {**auth, **({"If-None-Match": etag} if etag else {})}
        else:
            path = f"/api/v1/jobs/{job_id}/metrics?kind=batch&max_points=500"
            headers = auth
        started = time.perf_counter()
        try:
            status, got, body = await _exchange(reader, writer, path, headers)
        except (OSError, asyncio.IncompleteReadError):
            out.append((loop.time(), None, "error"))
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            continue
        out.append((loop.time(), time.perf_counter() - started, status))
        if mode == "incremental" and status == 200:
            after, etag = json.loads(body)["next"], got.get("etag")
        await asyncio.sleep(max(0.0, tick - loop.time()))
    writer.close()


async def phase(port, token, job_id, mode, pollers, seconds, start_after) -> list:
    loop = asyncio.get_running_loop()
    start = loop.time()
    out: list = []
    await asyncio.gather(
        *(
            poller(port, token, job_id, mode, start_after, start + seconds, out)
            for _ in range(pollers)
        )
    )
    return [r for r in out if r[0] >= start + WARMUP]


def cpu_seconds(api_pid: int) -> dict[str, float]:
    """CPU seconds used so far by the API's processes, PostgreSQL's, and this client."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {"api": 0.0, "postgres": 0.0, "client": time.process_time()}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        used = (int(fields[11]) + int(fields[12])) / tick
        if int(fields[2]) == api_pid or int(entry) == api_pid:  # fields[2]: the process group
            out["api"] += used
        elif comm.startswith("postgres"):
            out["postgres"] += used
    return out


def report(name: str, results: list, seconds: float, cpu: dict | None = None) -> dict:
    lat = sorted(r[1] * 1000 for r in results if r[1] is not None)
    statuses = [r[2] for r in results]
    q = statistics.quantiles(lat, n=100, method="inclusive") if len(lat) > 1 else [lat[0]] * 99
    line = {
        "phase": name,
        "requests": len(results),
        "per_second": round(len(results) / seconds),
        "p50_ms": round(q[49], 1),
        "p99_ms": round(q[98], 1),
        "max_ms": round(lat[-1], 1),
        "not_modified": statuses.count(304),
        "errors": sum(1 for s in statuses if s not in (200, 304)),
    }
    line["load"] = _load()  # the machine's load average as the phase ends
    if cpu:
        line["cpu_per_second"] = {k: round(v / seconds, 2) for k, v in cpu.items()}
    print(json.dumps(line))
    return line


def uncached(port: int, token: str, job_id: str, url: str, writer: Writer, n: int = 30) -> list:
    """Sequential max_points=500 polls, each right after a write (nothing cached)."""
    out = []
    for _ in range(n):
        writer.metrics.write(
            job_id,
            [
                {
                    "kind": "batch",
                    "step": writer.step,
                    "epoch": 0,
                    "batch": 0,
                    "attempt": 1,
                    "logs": {"loss": 0.02},
                    "wall_time": time.time(),
                }
            ],
        )
        writer.step += 1
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/jobs/{job_id}/metrics?kind=batch&max_points=500",
            headers={"Authorization": f"Bearer {token}"},
        )
        started = time.perf_counter()
        with urllib.request.urlopen(req, timeout=30) as resp:
            body = json.loads(resp.read())
        out.append((0, time.perf_counter() - started, resp.status))
        assert len(body["rows"]) <= 500 and body["downsampled"]
    return out


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--pollers", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=30.0)
    args = ap.parse_args()

    url = create_pg_database()
    home = Path(f"/tmp/fitfleet-poll-bench-{uuid.uuid4().hex[:8]}")
    home.mkdir(parents=True)
    proc = None
    try:
        t0 = time.perf_counter()
        job_id = fill(url, args.rows)
        print(f"# {args.rows} batch rows and rollups in {time.perf_counter() - t0:.1f} s")
        print("# load average (1, 5, 15 min) at the start: " + _load())
        token = TokenStore(url).create("bench", admin=True)[1]
        port = free_port()
        proc = start_api(url, home, port)
        writer = Writer(url, job_id, args.rows + 1)
        writer.start()
        report("max_points=500 uncached, sequential", uncached(port, token, job_id, url, writer), 1)
        measured = args.seconds - WARMUP
        for mode in ("incremental", "max_points=500"):
            # A dashboard polls from where its first (downsampled) load ended: the last step.
            before = cpu_seconds(proc.pid)
            results = asyncio.run(
                phase(port, token, job_id, mode, args.pollers, args.seconds, writer.step - 1)
            )
            after = cpu_seconds(proc.pid)
            used = {k: (after[k] - before[k]) / args.seconds * measured for k in after}
            report(f"{mode}, {args.pollers} pollers at 1/s", results, measured, used)
        writer.stop.set()
        print("# load average (1, 5, 15 min) at the end: " + _load())
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
        drop_pg_database(url)


if __name__ == "__main__":
    main()
