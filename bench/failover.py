"""Seconds from SIGKILL of a training worker to the job's next trained batch on another,
idle worker, with fitfleet's default lease settings (10 s lease, 2 s heartbeat, 2 s reaper
sweep), against the 3,600 s a plain Celery-on-Redis setup waits (its visibility timeout).

Real processes: PostgreSQL (a database of its own), Redis (database 14), a local store, a
reaper and two workers. Usage:
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "integration")]

import numpy as np  # noqa: E402
from stack import Stack, base_env, wait_for  # noqa: E402

from service.dispatch import enqueue  # noqa: E402
from service.jobs import JobStore  # noqa: E402
from service.metrics import MetricStore  # noqa: E402
from service.migrate import upgrade  # noqa: E402
from service.spec import normalize  # noqa: E402
from tests.conftest import create_pg_database, drop_pg_database  # noqa: E402
from tests.specs import blobs, mlp_spec  # noqa: E402

CELERY_VISIBILITY_TIMEOUT = 3600.0
BROKER = "redis://127.0.0.1:6379/14"


def one_failover(stack: Stack, settings_env: dict, data_url: str) -> float:
    db = settings_env["DATABASE_URL"]
    jobs, metrics = JobStore(db), MetricStore(db)
    spec = normalize(mlp_spec(data_url, features=16, hidden=32, epochs=40, batch_size=8,
                              checkpoint={"every_n_batches": 50}))
    job = jobs.create(spec, epochs=40, summary=None, max_attempts=5, project="bench")
    enqueue(BROKER, settings_env["FITFLEET_HOME"], job["id"], "default")
    def training():
        state = jobs.get(job["id"])
        assert state["state"] in ("queued", "running"), state["error"]
        return metrics.count(job["id"], "batch") > 300

    wait_for(training, 180, 0.05, "training")
    victim = jobs.get(job["id"])["worker"].split("@")[0]
    stack.kill(victim, signal.SIGKILL)
    killed = time.time()
    stack.procs[victim].wait(10)

    def resumed():
        rows = metrics.read(job["id"], "batch", after=0, limit=100_000)["rows"]
        later = [r["wall_time"] for r in rows if r["attempt"] == 2]
        return min(later) if later else None

    first = wait_for(resumed, 120, 0.05, "resumed training")
    stack.start_worker(victim)  # the fleet gets its worker back for the next round
    jobs.request_cancel(job["id"])
    return first - killed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    db = create_pg_database()
    try:
        upgrade(db)
        x, y = blobs(n=4000, features=16)
        (tmp / "home").mkdir()
        np.savez(tmp / "home" / "train.npz", x=x, y=y)  # data under FITFLEET_HOME may be read
        env = base_env(database_url=db, broker_url=BROKER, storage_url=(tmp / "store").as_uri(),
                       home=tmp / "home")
        for key in ("FITFLEET_LEASE_SECONDS", "FITFLEET_HEARTBEAT_SECONDS",
                    "FITFLEET_REAPER_INTERVAL"):
            env.pop(key)  # the defaults
        env["FITFLEET_AUTH"] = "off"
        os.environ.update({"FITFLEET_AUTH": "off"})
        import redis

        redis.Redis.from_url(BROKER).flushdb()
        stack = Stack(env, tmp / "logs")
        try:
            stack.start_reaper()
            stack.start_worker("a")
            stack.start_worker("b")
            time.sleep(15)  # both workers up and idle
            seconds = [one_failover(stack, env, (tmp / "home" / "train.npz").as_uri())
                       for _ in range(args.rounds)]
        finally:
            stack.stop_all()
    finally:
        drop_pg_database(db)
    med = statistics.median(seconds)
    print(f"SIGKILL to the next trained batch on another worker, {args.rounds} rounds:")
    print("  seconds: " + ", ".join(f"{s:.1f}" for s in seconds) + f"  (median {med:.1f})")
    print(f"  plain Celery on Redis waits {CELERY_VISIBILITY_TIMEOUT:.0f} s: "
          f"x{CELERY_VISIBILITY_TIMEOUT / med:.0f} faster")


if __name__ == "__main__":
    main()
