"""Two API replicas sharing nothing in memory: polls that alternate between them keep the
cursor, the ETag and 304 right, because all three come from the database."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from service.store.jobs import JobStore
from service.store.metrics import MetricStore
from testbed.services import free_port
from testbed.stack import wait_for


def rows(first: int, last: int) -> list[dict]:
    return [
        {
            "kind": "batch",
            "step": s,
            "epoch": 0,
            "batch": s - 1,
            "attempt": 1,
            "logs": {"loss": 1.0 / s},
            "wall_time": time.time(),
        }
        for s in range(first, last + 1)
    ]


def get(base: str, token: str, path: str, etag: str | None = None):
    req = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    if etag:
        req.add_header("If-None-Match", etag)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers.get("ETag"), json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("ETag"), None


def start_second_replica(stack) -> str:
    port = free_port()
    stack.spawn("api-b", "api", "--host", "127.0.0.1", "--port", str(port))
    base = f"http://127.0.0.1:{port}"

    def healthy():
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    wait_for(healthy, 60, 0.2, "second API replica")
    return base


def test_polls_alternating_between_two_replicas(stack):
    stack.start_api()
    a, b = stack.api_url, start_second_replica(stack)
    token, url = stack.token, stack.env["DATABASE_URL"]
    job_id = JobStore(url).create(
        {"name": "replicas", "model": {}}, epochs=1, summary=None, max_attempts=1, project="test"
    )["id"]
    metrics = MetricStore(url)
    metrics.write(job_id, rows(1, 5))
    path = f"/api/v1/jobs/{job_id}/metrics?kind=batch"

    status, etag, body = get(a, token, f"{path}&after=-1")
    assert status == 200 and [r["step"] for r in body["rows"]] == [1, 2, 3, 4, 5]
    cursor = body["next"]
    status, etag, body = get(b, token, f"{path}&after={cursor}", etag)
    assert status == 200 and body["rows"] == [] and body["next"] == cursor
    assert get(a, token, f"{path}&after={cursor}", etag)[0] == 304  # the other replica agrees
    metrics.write(job_id, rows(6, 8))
    status, etag2, body = get(b, token, f"{path}&after={cursor}", etag)
    assert status == 200 and [r["step"] for r in body["rows"]] == [6, 7, 8]
    assert etag2 != etag and body["next"] == 8
    assert get(a, token, f"{path}&after={cursor}", etag2)[0] == 304

    down = f"{path}&max_points=4"
    (sa, ea, ba), (sb, eb, bb) = get(a, token, down), get(b, token, down)
    assert sa == sb == 200 and ea == eb and ba == bb  # one answer per question and version
    assert get(b, token, down, ea)[0] == 304
