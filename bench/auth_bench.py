"""What authentication costs a request: the same reads with a Bearer token and with auth off.

Two apps on one SQLite database (the embedded default) serve ``GET /api/v1/jobs/<id>`` and
``GET /api/v1/jobs?limit=20`` through Flask's test client, interleaved request by request so
both see the same machine. Prints p50 and p99 per setting and the ratio of p50s
(token / off): the price of hashing the token and looking it up. A caller of another
project is timed too (a 404 for a job, an empty page for the list). Usage:
    python bench/auth_bench.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service.core.config import Settings
from service.store.jobs import JobStore
from service.store.migrate import upgrade
from service.store.tokens import TokenStore
from service.web.app import create_app


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="fitfleet-auth-bench-"))
    url = f"sqlite:///{home / 'fitfleet.db'}"
    upgrade(url)
    base = {
        "database_url": url,
        "broker_url": "filesystem://",
        "home": str(home),
        "storage_url": (home / "store").as_uri(),
    }
    jobs = JobStore(url)
    ids = [
        jobs.create({"name": f"j{i}"}, epochs=1, summary=None, max_attempts=1, project="alpha")[
            "id"
        ]
        for i in range(50)
    ]
    own = TokenStore(url).create("alpha")[1]
    other = TokenStore(url).create("beta")[1]
    on = create_app(Settings.from_env({}, **base)).test_client()
    off = create_app(Settings.from_env({}, auth="off", **base)).test_client()
    callers = {
        "auth off": (off, {}),
        "own token": (on, {"Authorization": f"Bearer {own}"}),
        "other project": (on, {"Authorization": f"Bearer {other}"}),
    }
    for path in (lambda i: f"/api/v1/jobs/{ids[i % len(ids)]}", lambda i: "/api/v1/jobs?limit=20"):
        times: dict[str, list[float]] = {name: [] for name in callers}
        for i in range(args.requests):
            for name, (client, headers) in callers.items():
                started = time.perf_counter()
                response = client.get(path(i), headers=headers)
                times[name].append((time.perf_counter() - started) * 1000)
                assert response.status_code in (200, 404), response.status_code
        print(f"GET {path(0)} x {args.requests}")
        for name, values in times.items():
            print(
                f"  {name:<22} p50 {statistics.median(values):6.2f} ms   "
                f"p99 {percentile(values, 0.99):6.2f} ms"
            )
        ratio = statistics.median(times["own token"]) / statistics.median(times["auth off"])
        print(f"  p50 ratio own token / auth off: {ratio:.2f}")


if __name__ == "__main__":
    main()
