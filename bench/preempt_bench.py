"""Preemption: how soon a job of high priority trains on a full fleet, against an idle one.

Two real workers (Keras, CPU) on PostgreSQL and Redis, with the default preemption
settings (``FITFLEET_PREEMPT_MIN_SECONDS=5``). Each round measures, side by side:

- **idle**: an urgent job (priority 5) created while both workers are idle;
- **full**: the same job created while both workers train long jobs of priority 0 that
  have run for more than the minimum; one of them is asked to give way, checkpoints at
  once, releases its worker and resumes later (exact resume).

For each: seconds from the job's creation (what a submit does after its checks) to its
first trained batch (the wall time of its first batch metric row), and for the full fleet
the steps the victim redid on resuming (its last step before giving way minus the step it
resumed from). Rounds are interleaved; medians, with the spread (min-max).

Usage:
    python bench/preempt_bench.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REDIS = "redis://127.0.0.1:6379/14"


def create(settings, spec: dict) -> str:
    from service.admission.spec import normalize
    from service.core.dispatch import enqueue
    from service.store.jobs import JobStore

    spec = normalize(spec, settings)
    job = JobStore(settings.database_url).create(
        spec, epochs=spec["fit"]["epochs"], summary=None, max_attempts=5
    )
    enqueue(settings.broker_url, settings.home, job["id"], spec["queue"], spec["priority"])
    return job["id"]


def first_batch_seconds(settings, job_id: str, timeout: float = 300) -> float:
    """Seconds from the job's creation to the end of its first trained batch."""
    from sqlalchemy import select

    from service.store.db import session_scope
    from service.store.tables import Job, Metric

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with session_scope(settings.database_url) as s:
            wall = s.scalar(
                select(Metric.wall_time).where(
                    Metric.job_id == job_id, Metric.kind == "batch", Metric.step == 1
                )
            )
            created = s.scalar(select(Job.created_at).where(Job.id == job_id))
        if wall is not None:
            return wall - created.timestamp()
        time.sleep(0.1)
    raise RuntimeError(f"job {job_id} trained no batch within {timeout} s")


def wait(fn, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.2)
    raise RuntimeError(f"{what}: not within {timeout} s")


def ran_for(jobs, job_id: str) -> float:
    from datetime import datetime

    job = jobs.get(job_id)
    if job["state"] != "running":
        return 0.0
    started = datetime.fromisoformat(jobs.attempts(job_id)[-1]["started_at"])
    return time.time() - started.timestamp()


def idle_fleet(jobs) -> bool:
    listed, _ = jobs.list("running", 10, None)
    return not listed


def run_round(settings, specs, jobs) -> dict:
    wait(lambda: idle_fleet(jobs), 300, "an idle fleet")
    urgent = create(settings, specs["urgent"])
    idle = first_batch_seconds(settings, urgent)
    wait(lambda: jobs.get(urgent)["state"] == "succeeded", 300, "the urgent job")
    long = [create(settings, specs["long"]) for _ in range(2)]
    wait(lambda: min(ran_for(jobs, j) for j in long) > 6, 300, "a full fleet")
    urgent = create(settings, specs["urgent"])
    full = first_batch_seconds(settings, urgent)
    victim = wait(
        lambda: next((j for j in long if jobs.get(j)["preemptions"]), None), 60, "a victim"
    )
    wait(lambda: len(jobs.attempts(victim)) > 1, 300, "the victim claimed again")
    gave_way = jobs.attempts(victim)[0]
    # resumed_from_step is recorded once the checkpoint is restored: wait for training
    wait(lambda: jobs.get(victim)["progress"]["step"] > gave_way["last_step"], 300, "a resume")
    resumed = jobs.attempts(victim)[1]
    redone = gave_way["last_step"] - resumed["resumed_from_step"]
    for job_id in long:
        jobs.request_cancel(job_id)
    return {"idle_s": idle, "full_s": full, "victim_redid_steps": redone}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the workers' logs")
    args = parser.parse_args()
    import numpy as np
    import redis

    from service.core.config import Settings
    from service.store.jobs import JobStore
    from service.store.migrate import upgrade
    from testbed.services import create_pg_database, drop_pg_database
    from testbed.specs import blobs, mlp_spec
    from testbed.stack import Stack, base_env

    redis.Redis.from_url(REDIS).flushdb()
    url = create_pg_database("fitfleet_bench")
    upgrade(url)
    keep = tempfile.mkdtemp(prefix="bench-preempt-") if args.keep else None
    with tempfile.TemporaryDirectory(prefix="bench-preempt-", dir=keep) as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        env = base_env(
            database_url=url,
            broker_url=REDIS,
            storage_url=(Path(tmp) / "store").as_uri(),
            home=home,
            FITFLEET_LEASE_SECONDS="10",
            FITFLEET_HEARTBEAT_SECONDS="2",
            FITFLEET_REAPER_INTERVAL="2",
        )
        x, y = blobs(n=2000, features=16)
        np.savez(home / "long.npz", x=x, y=y)
        x, y = blobs(n=400, features=16)
        np.savez(home / "short.npz", x=x, y=y)
        specs = {
            "long": mlp_spec(
                (home / "long.npz").as_uri(),
                features=16,
                hidden=32,
                epochs=50,
                batch_size=8,
                checkpoint={"every_n_batches": 100},
                priority=0,
            ),
            "urgent": mlp_spec(
                (home / "short.npz").as_uri(), features=16, epochs=1, priority=5, name="urgent"
            ),
        }
        settings = Settings.from_env(env)
        stack = Stack(env, Path(keep or tmp) / "logs")
        try:
            stack.start_reaper()
            stack.start_worker("w1")
            stack.start_worker("w2")
            jobs = JobStore(url)
            rounds = [run_round(settings, specs, jobs) for _ in range(args.rounds)]
        finally:
            stack.stop_all()
            drop_pg_database(url)
    print(f"{args.rounds} rounds, 2 workers, default preemption settings (min 5 s)")
    for key in rounds[0]:
        values = [r[key] for r in rounds]
        print(
            f"{key:20} median {statistics.median(values):8.2f}   "
            f"spread {min(values):.2f}-{max(values):.2f}"
        )
    idle = statistics.median(r["idle_s"] for r in rounds)
    full = statistics.median(r["full_s"] for r in rounds)
    print(f"\nfull/idle: x{full / idle:.2f} (seconds to the urgent job's first batch)")


if __name__ == "__main__":
    main()
