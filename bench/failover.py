"""Seconds from a worker's death to the job's next trained batch elsewhere, two ways, side by
side: the death of one process of ``fitfleet worker --concurrency 2`` (its parent hands the
job back at once; target <= 3 s) and the death of a whole machine, parent and children
(the lease must run out; target <= lease + 2 s). fitfleet's default lease settings (10 s
lease, 2 s heartbeat, 2 s reaper sweep); plain Celery on Redis waits its visibility timeout.

Real processes: PostgreSQL (a database of its own), Redis (database 14), a local store, a
reaper, and two "machines", each a ``--concurrency 2`` worker in its own process group.
Rounds alternate the two kinds. Usage:
    python bench/failover.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np

from service.admission.spec import normalize
from service.core.dispatch import enqueue
from service.store.fleet import FleetStore
from service.store.jobs import JobStore
from service.store.metrics import MetricStore
from service.store.migrate import upgrade
from testbed.services import create_pg_database, drop_pg_database
from testbed.specs import blobs, mlp_spec
from testbed.stack import Stack, base_env, wait_for

CELERY_VISIBILITY_TIMEOUT = 3600.0
BROKER = "redis://127.0.0.1:6379/14"
MACHINES = ("m1", "m2")
LEASE = 10.0  # FITFLEET_LEASE_SECONDS's default
steps: dict[str, list[list[float]]] = {"process": [], "machine": []}  # where the time went


def idle_children(db: str, machine: str) -> int:
    return sum(
        1
        for w in FleetStore(db).workers(stale_after=6.0, include_stopped=False)
        if w["name"].startswith(f"{machine}@") and w["state"] == "idle"
    )


def start_machine(stack: Stack, db: str, machine: str) -> None:
    stack.spawn(
        machine,
        "worker",
        "--queues",
        "default",
        "--concurrency",
        "2",
        "--hostname",
        f"{machine}@bench",
    )
    wait_for(lambda: idle_children(db, machine) >= 2, 240, 0.5, f"{machine} warm")


def training_job(env: dict, data_url: str) -> str:
    db = env["DATABASE_URL"]
    jobs, metrics = JobStore(db), MetricStore(db)
    spec = normalize(
        mlp_spec(
            data_url,
            features=16,
            hidden=32,
            epochs=40,
            batch_size=8,
            checkpoint={"every_n_batches": 50},
        )
    )
    job = jobs.create(spec, epochs=40, summary=None, max_attempts=5, project="bench")
    enqueue(BROKER, env["FITFLEET_HOME"], job["id"], "default")

    def training():
        state = jobs.get(job["id"])
        assert state["state"] in ("queued", "running"), state["error"]
        return metrics.count(job["id"], "batch") > 300

    wait_for(training, 240, 0.05, "training")
    return job["id"]


def one_failover(stack: Stack, env: dict, data_url: str, kind: str) -> float:
    """Kill the job's process ("process") or its whole machine ("machine"); seconds to the
    next batch of the job's second attempt."""
    db = env["DATABASE_URL"]
    jobs, metrics = JobStore(db), MetricStore(db)
    job_id = training_job(env, data_url)
    holder = jobs.get(job_id)["worker"]  # "<machine>@bench-<i>:<pid>"
    machine, pid = holder.split("@")[0], int(holder.rsplit(":", 1)[1])
    parent = stack.procs[machine]
    if kind == "process":
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        assert int(stat[1]) == parent.pid, "not a child of the machine this bench started"
        os.kill(pid, signal.SIGKILL)
    else:
        stack.kill(machine, signal.SIGKILL, group=True)  # the parent and its children
    killed = time.time()
    if kind == "machine":
        parent.wait(10)

    def resumed():
        rows = metrics.read(job_id, "batch", after=0, limit=100_000)["rows"]
        later = [r["wall_time"] for r in rows if r["attempt"] == 2]
        return min(later) if later else None

    first = wait_for(resumed, 180, 0.05, "resumed training")
    lost, again = jobs.attempts(job_id)[:2]
    marks = [
        datetime.fromisoformat(lost["ended_at"]).timestamp(),
        datetime.fromisoformat(again["started_at"]).timestamp(),
    ]
    steps[kind].append([marks[0] - killed, marks[1] - marks[0], first - marks[1]])
    jobs.request_cancel(job_id)
    wait_for(lambda: jobs.get(job_id)["state"] == "cancelled", 60, 0.2, "cancelled")
    if kind == "machine":
        start_machine(stack, db, machine)  # the fleet gets its machine back
    else:
        wait_for(lambda: idle_children(db, machine) >= 2, 240, 0.5, "replacement warm")
    return first - killed


def summary(name: str, seconds: list[float], target: float) -> str:
    med = statistics.median(seconds)
    return (
        f"  {name:<34} "
        + ", ".join(f"{s:.2f}" for s in seconds)
        + f"  median {med:.2f}  spread {min(seconds):.2f}-{max(seconds):.2f}"
        + f"  (target <= {target:g}; Celery's {CELERY_VISIBILITY_TIMEOUT:.0f} s / median"
        + f" = x{CELERY_VISIBILITY_TIMEOUT / med:.0f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    db = create_pg_database()
    results = {"process": [], "machine": []}
    loads = [os.getloadavg()]
    try:
        upgrade(db)
        x, y = blobs(n=4000, features=16)
        (tmp / "home").mkdir()
        np.savez(tmp / "home" / "train.npz", x=x, y=y)  # data under FITFLEET_HOME may be read
        env = base_env(
            database_url=db,
            broker_url=BROKER,
            storage_url=(tmp / "store").as_uri(),
            home=tmp / "home",
        )
        for key in (
            "FITFLEET_LEASE_SECONDS",
            "FITFLEET_HEARTBEAT_SECONDS",
            "FITFLEET_REAPER_INTERVAL",
        ):
            env.pop(key)  # the defaults
        env["FITFLEET_AUTH"] = "off"
        import redis

        redis.Redis.from_url(BROKER).flushdb()
        stack = Stack(env, tmp / "logs")
        data_url = (tmp / "home" / "train.npz").as_uri()
        try:
            stack.start_reaper()
            for machine in MACHINES:
                start_machine(stack, db, machine)
            for _ in range(args.rounds):
                for kind, seconds in results.items():
                    seconds.append(one_failover(stack, env, data_url, kind))
                    loads.append(os.getloadavg())
        finally:
            stack.stop_all()
    finally:
        drop_pg_database(db)
    one_minute = [load[0] for load in loads]
    print(
        f"Death to the next trained batch elsewhere, {args.rounds} rounds each, interleaved "
        f"(seconds; load average {min(one_minute):.1f}-{max(one_minute):.1f}, "
        f"{os.cpu_count()} cores):"
    )
    print(summary("one process (parent hands it back)", results["process"], 3))
    print(summary("whole machine (the lease runs out)", results["machine"], LEASE + 2))
    ratio = statistics.median(results["machine"]) / statistics.median(results["process"])
    print(f"  machine / process = x{ratio:.1f}")
    print("  medians of: death -> attempt marked lost | -> claimed by another | -> first batch")
    for kind, parts in steps.items():
        print(f"    {kind:<8} " + " | ".join(f"{statistics.median(p):.2f}" for p in zip(*parts)))


if __name__ == "__main__":
    main()
