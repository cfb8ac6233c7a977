"""A fleet on this machine: workers on different queues, priorities, a queue nobody serves,
Prometheus figures from the API and from a worker, and JSON logs naming the job."""

from __future__ import annotations

import json
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.jobs_helpers import upload_blobs
from tests.integration.stack import free_port, wait_for
from tests.specs import mlp_spec

pytestmark = pytest.mark.slow


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def submit(stack, spec: dict) -> str:
    status, job = stack.http("POST", "/api/v1/jobs", spec)
    assert status == 201, job
    return job["id"]


def attempts(stack, job_id: str) -> list[dict]:
    status, body = stack.http("GET", f"/api/v1/jobs/{job_id}/attempts")
    assert status == 200, body
    return body["attempts"]


def json_lines(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


@pytest.fixture
def fleet(stack):
    """The stack on a Redis database of its own: the queue depths read are this test's."""
    import redis

    url = "redis://127.0.0.1:6379/12"
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    stack.env["CELERY_BROKER_URL"] = url
    # Priorities order the queue here; preemption (a job of higher priority taking the
    # busy worker) is test_preemption.py's subject.
    stack.env["FITFLEET_PREEMPT_MIN_SECONDS"] = "3600"
    return stack


def test_queues_priorities_and_a_queue_nobody_serves(fleet, s3, tmp_path):
    stack = fleet
    # As deployed: request latency summed over the API's gunicorn processes.
    stack.env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path / "prometheus")
    stack.start_api()
    del stack.env["PROMETHEUS_MULTIPROC_DIR"]
    port_a = free_port()
    stack.start_worker("wa", queues="alpha", env={"FITFLEET_WORKER_METRICS_PORT": str(port_a)})
    stack.start_worker("wb", queues="beta", env={"FITFLEET_LOG_FORMAT": "json"})
    data = upload_blobs(s3)
    small = {"epochs": 2, "checkpoint": {"every_epoch": True}}

    # Worker A is kept busy while two jobs of different priorities wait behind it.
    blocker = submit(
        stack,
        mlp_spec(upload_blobs(s3, n=2000), epochs=500, batch_size=8, queue="alpha", name="blocker"),
    )
    stack.wait_state(blocker, "running", timeout=180)
    low = submit(stack, mlp_spec(data, queue="alpha", priority=1, name="low", **small))
    high = submit(stack, mlp_spec(data, queue="alpha", priority=8, name="high", **small))
    beta = submit(stack, mlp_spec(data, queue="beta", name="beta", **small))
    nobody = submit(stack, mlp_spec(data, queue="gamma", name="nobody", **small))

    assert stack.wait_state(beta, ["succeeded", "failed"], timeout=180)["state"] == "succeeded"
    assert attempts(stack, beta)[0]["worker"].startswith("wb@")
    assert stack.job(low)["state"] == stack.job(high)["state"] == "queued"  # A is busy

    status, _ = stack.http("POST", f"/api/v1/jobs/{blocker}/cancel")
    assert status in (200, 202)
    for job_id in (high, low):
        done = stack.wait_state(job_id, ["succeeded", "failed"], timeout=180)
        assert done["state"] == "succeeded", done["error"]
    first_high, first_low = attempts(stack, high)[0], attempts(stack, low)[0]
    assert first_high["worker"].startswith("wa@") and first_low["worker"].startswith("wa@")
    assert first_high["started_at"] < first_low["started_at"]  # submitted later, ran first

    # Nobody serves "gamma": the job waits, visible as queued, and its message stays.
    job = stack.job(nobody)
    assert (job["state"], job["queue"], job["attempts"]) == ("queued", "gamma", 0)
    status, listing = stack.http("GET", "/api/v1/jobs?state=queued")
    assert nobody in [j["id"] for j in listing["jobs"]]
    api = scrape(f"{stack.api_url}/metrics")
    assert value(api, "fitfleet_jobs_waiting", queue="gamma") == 1
    assert value(api, "fitfleet_queue_depth", queue="gamma") == 1
    assert value(api, "fitfleet_queue_depth", queue="alpha") == 0
    assert value(api, "fitfleet_jobs", state="succeeded") == 3
    assert value(api, "fitfleet_jobs", state="cancelled") == 1
    assert (
        value(
            api,
            "fitfleet_api_request_duration_seconds_count",
            method="POST",
            route="/api/v1/jobs",
            status="201",
        )
        >= 5
    )

    # Worker A's own figures moved with the four jobs it ran.
    wa = scrape(f"http://127.0.0.1:{port_a}/metrics")
    assert value(wa, "fitfleet_lease_renewals_total", outcome="ok") >= 3
    assert value(wa, "fitfleet_checkpoint_save_seconds_count") >= 4  # 2 epochs x 2 jobs
    assert value(wa, "fitfleet_checkpoint_upload_seconds_count") >= 4
    assert value(wa, "fitfleet_metric_rows_written_total") >= 2 * (2 * 6 + 2)
    assert value(wa, "fitfleet_worker_attempts_total", outcome="cancelled") == 1
    # Counted when the task returns, a moment after the job's row says succeeded.
    wait_for(
        lambda: (
            value(
                scrape(f"http://127.0.0.1:{port_a}/metrics"),
                "fitfleet_worker_attempts_total",
                outcome="succeeded",
            )
            == 2
        ),
        timeout=30,
        what="two attempts counted on worker A",
    )

    # A worker for "gamma" arrives: the waiting job runs.
    stack.start_worker("wg", queues="gamma,beta")
    assert stack.wait_state(nobody, ["succeeded", "failed"], timeout=180)["state"] == "succeeded"
    assert attempts(stack, nobody)[0]["worker"].startswith("wg@")

    # Worker B logged JSON lines naming the job and attempt it trained.
    lines = wait_for(
        lambda: [r for r in json_lines(stack.tail("wb", 200_000)) if r.get("job_id") == beta],
        timeout=10,
        what="JSON log lines",
    )
    assert all(r["attempt"] == 1 for r in lines)
    assert any("attempt 1" in r["message"] for r in lines)
