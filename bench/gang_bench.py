"""Multi-worker jobs, side by side: training steps per second of a 2-member gang against
one worker on the same model and data, and the seconds from a member's SIGKILL to the
job's next trained batch on a new gang.

Real processes: PostgreSQL (a database of its own), Redis (database 15, a queue of its
own), a local store,
a reaper and three workers on loopback (two form each gang; the third stands by for the
SIGKILL rounds). Steps per second come from the batch metric rows' wall times, from the
first row to the last, so process start and gang formation are left out. On a 2-core
machine two members share the cores that one worker has alone: the ratio shows the cost
of the collective per step at this scale, not a speed-up. Usage:
    python bench/gang_bench.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np

from service.admission.spec import normalize
from service.core.config import Settings
from service.core.dispatch import enqueue
from service.store.jobs import JobStore
from service.store.metrics import MetricStore
from service.store.migrate import upgrade
from testbed.services import create_pg_database, drop_pg_database
from testbed.specs import blobs, mlp_spec
from testbed.stack import Stack, base_env, wait_for

BROKER = "redis://127.0.0.1:6379/15"
QUEUE = f"gang-bench-{uuid.uuid4().hex[:8]}"  # a queue of its own on a shared Redis
EPOCHS, BATCH = 2, 32


def worker_env() -> dict[str, str]:
    base = random.randrange(30000, 60000, 10)
    return {
        "FITFLEET_WORKER_HOST": "127.0.0.1",
        "FITFLEET_WORKER_PORTS": f"{base}-{base + 9}",
        "FITFLEET_COLLECTIVE_TIMEOUT_SECONDS": "3",
    }


def submit(env: dict, data_url: str, workers: int, every: int = 50) -> str:
    distribute = {"strategy": "multi_worker_mirrored", "workers": workers} if workers > 1 else None
    spec = normalize(
        mlp_spec(
            data_url,
            features=16,
            hidden=64,
            epochs=EPOCHS,
            batch_size=BATCH,
            distribute=distribute,
            checkpoint={"every_epoch": True, "every_n_batches": every},
            queue=QUEUE,
        ),
        Settings.from_env(env),
    )
    job = JobStore(env["DATABASE_URL"]).create(
        spec, epochs=EPOCHS, summary=None, max_attempts=5, project="bench"
    )
    enqueue(BROKER, env["FITFLEET_HOME"], job["id"], QUEUE)
    return job["id"]


def batch_rows(env: dict, job_id: str) -> list[dict]:
    return MetricStore(env["DATABASE_URL"]).read(job_id, "batch", after=0, limit=100_000)["rows"]


def finished(env: dict, job_id: str) -> None:
    jobs = JobStore(env["DATABASE_URL"])

    def ended():
        job = jobs.get(job_id)
        assert job["state"] != "failed", job["error"]
        done = job["state"] == "succeeded"
        return done and all(a["state"] != "running" for a in jobs.attempts(job_id))

    wait_for(ended, 600, 0.2, f"job {job_id} ends")


def steps_per_second(env: dict, data_url: str, workers: int) -> float:
    job_id = submit(env, data_url, workers)
    finished(env, job_id)
    times = [r["wall_time"] for r in batch_rows(env, job_id)]
    return (len(times) - 1) / (max(times) - min(times))


def kill_to_next_batch(stack: Stack, env: dict, data_url: str) -> float:
    """SIGKILL the worker of rank 1 mid-epoch; seconds to the first batch of the new gang."""
    jobs = JobStore(env["DATABASE_URL"])
    job_id = submit(env, data_url, 2, every=20)
    wait_for(lambda: len(batch_rows(env, job_id)) > 60, 600, 0.05, "training")
    member = [a for a in jobs.attempts(job_id) if a["state"] == "running"][-1]["worker"]
    name = member.split("@")[0]
    stack.kill(name, signal.SIGKILL)
    killed = time.time()
    stack.procs[name].wait(10)

    def resumed():
        later = [r["wall_time"] for r in batch_rows(env, job_id) if r["attempt"] == 2]
        return min(later) if later else None

    first = wait_for(resumed, 300, 0.05, "resumed training")
    finished(env, job_id)
    stack.start_worker(name, QUEUE, env=worker_env())  # the fleet gets its worker back
    return first - killed


def spread(values: list[float], unit: str) -> str:
    return (
        ", ".join(f"{v:.2f}" for v in values)
        + f"  median {statistics.median(values):.2f} {unit}"
        + f"  spread {min(values):.2f}-{max(values):.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    db = create_pg_database()
    one, two, kills, loads = [], [], [], [os.getloadavg()]
    try:
        upgrade(db)
        x, y = blobs(n=4000, features=16)
        (tmp / "home").mkdir()
        np.savez(tmp / "home" / "train.npz", x=x, y=y)
        env = base_env(
            database_url=db,
            broker_url=BROKER,
            storage_url=(tmp / "store").as_uri(),
            home=tmp / "home",
        )
        env["FITFLEET_AUTH"] = "off"
        stack = Stack(env, tmp / "logs")
        data_url = (tmp / "home" / "train.npz").as_uri()
        try:
            stack.start_reaper()
            for name in ("m1", "m2", "m3"):
                stack.start_worker(name, QUEUE, env=worker_env())
            for _ in range(args.rounds):
                one.append(steps_per_second(env, data_url, 1))
                two.append(steps_per_second(env, data_url, 2))
                kills.append(kill_to_next_batch(stack, env, data_url))
                loads.append(os.getloadavg())
        finally:
            stack.stop_all()
    finally:
        drop_pg_database(db)
    one_minute = [load[0] for load in loads]
    steps = 4000 * 0.8 // BATCH * EPOCHS
    print(
        f"MLP 16-64-64-3, batch {BATCH} ({BATCH // 2} per member), {steps:.0f} steps, "
        f"{args.rounds} rounds interleaved (load average {min(one_minute):.1f}-"
        f"{max(one_minute):.1f}, {os.cpu_count()} cores):"
    )
    print(f"  1 worker    {spread(one, 'steps/s')}")
    print(f"  2 members   {spread(two, 'steps/s')}")
    print(f"  2 members / 1 worker = {statistics.median(two) / statistics.median(one):.2f}")
    print(f"  SIGKILL of a member -> next trained batch on a new gang: {spread(kills, 's')}")


if __name__ == "__main__":
    main()
