"""Sweep wall time and total steps trained, with and without a pruner, on the same trials.

Both sweeps sample the same parameters (the random sampler, seeded by the sweep's seed and
the trial number), so the only difference is successive halving stopping the trials that
fall behind at each rung. Real processes: PostgreSQL (a database of its own), Redis
(database 15), a local store, the API, the reaper and two workers; the sweeps run one
after the other, alternating which goes first each round. Also reports the time from a
trial's job ending to the next trial's job starting training (the slot hand-over).
Usage:
    python bench/sweep_bench.py [--rounds 2] [--trials 8] [--epochs 6] [--samples 3000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service.store.migrate import upgrade
from testbed import sweeps
from testbed.services import create_pg_database, drop_pg_database
from testbed.specs import blobs, npz_bytes
from testbed.stack import Stack, base_env

BROKER = "redis://127.0.0.1:6379/15"  # a database no other bench or test uses


def when(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def run_sweep(stack: Stack, data_url: str, pruner: str, args) -> dict:
    spec = sweeps.sweep_spec(
        data_url,
        epochs=args.epochs,
        pruner=pruner,
        max_trials=args.trials,
        max_parallel=2,
        sampler={"name": "random"},
        seed=args.seed,
    )
    started = time.monotonic()
    sweep = sweeps.wait_ended(stack, sweeps.submit(stack, spec)["id"], timeout=1800)
    wall = time.monotonic() - started
    jobs = [stack.job(t["job_id"]) for t in sweep["trials"]]
    handovers = []
    for prev, nxt in zip(jobs, jobs[2:]):  # two at a time: trial n+2 takes trial n's slot
        if prev["finished_at"] and nxt["started_at"]:
            handovers.append(max(0.0, when(nxt["started_at"]) - when(prev["finished_at"])))
    return {
        "wall": wall,
        "steps": sweep["steps"],
        "pruned": sweep["trial_counts"]["pruned"],
        "params": [t["params"] for t in sweep["trials"]],
        "handover": statistics.median(handovers) if handovers else float("nan"),
    }


def _stop_on_sigterm() -> None:
    """SIGTERM ends the run through ``finally``, so the stack's processes stop too."""
    import signal

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--samples", type=int, default=3000, help="training set size")
    args = parser.parse_args()
    _stop_on_sigterm()
    import redis

    redis.Redis.from_url(BROKER).flushdb()
    db = create_pg_database("fitfleet_bench")
    upgrade(db)
    work = Path(tempfile.mkdtemp(prefix="sweep-bench-"))
    data = work / "home" / "blobs.npz"
    data.parent.mkdir(parents=True)
    data.write_bytes(npz_bytes(*blobs(n=args.samples, features=6)))
    env = base_env(
        database_url=db,
        broker_url=BROKER,
        storage_url=(work / "store").as_uri(),
        home=work / "home",
    )
    stack = Stack(env, work / "logs")
    results: dict[str, list[dict]] = {"none": [], "successive_halving": []}
    try:
        stack.start_api()
        stack.start_reaper()
        stack.start_worker("w1")
        stack.start_worker("w2")
        for r in range(args.rounds):
            order = ["none", "successive_halving"] if r % 2 == 0 else ["successive_halving", "none"]
            for pruner in order:
                out = run_sweep(stack, data.as_uri(), pruner, args)
                results[pruner].append(out)
                print(
                    f"round {r + 1} {pruner:>18}: {out['wall']:6.1f} s, {out['steps']:5d} steps, "
                    f"{out['pruned']} pruned, slot hand-over {out['handover']:.2f} s",
                    flush=True,
                )
            same = results["none"][-1]["params"] == results["successive_halving"][-1]["params"]
            print(f"round {r + 1}: same trials in both sweeps: {same}", flush=True)
    finally:
        stack.stop_all()
        drop_pg_database(db)
    report(results, args)


def report(results: dict, args) -> None:
    none, sha = results["none"], results["successive_halving"]
    walls = [s["wall"] / n["wall"] for s, n in zip(sha, none)]
    steps = [s["steps"] / n["steps"] for s, n in zip(sha, none)]
    print(
        f"\n{args.trials} trials x {args.epochs} epochs of {args.samples} samples, "
        f"2 at a time, {args.rounds} rounds"
    )
    for name, rows in (("no pruner", none), ("successive halving", sha)):
        print(
            f"  {name:>18}: wall median {statistics.median(r['wall'] for r in rows):6.1f} s "
            f"(min {min(r['wall'] for r in rows):.1f}, max {max(r['wall'] for r in rows):.1f}), "
            f"steps {statistics.median(r['steps'] for r in rows):.0f}, "
            f"hand-over median {statistics.median(r['handover'] for r in rows):.2f} s"
        )
    print(
        f"  ratio successive halving / none: wall x{statistics.median(walls):.2f} "
        f"(range {min(walls):.2f}-{max(walls):.2f}), steps x{statistics.median(steps):.2f} "
        f"(range {min(steps):.2f}-{max(steps):.2f})"
    )


if __name__ == "__main__":
    main()
