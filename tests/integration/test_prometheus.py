"""Prometheus figures: the API's /metrics and a worker's own port move as jobs run."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from service.core.config import Settings
from service.core.dispatch import broker_priority, enqueue
from service.ops.broker import queue_keys, transport_options
from service.store.jobs import JobStore
from service.web.app import create_app
from tests.conftest import free_port


def parse(text: str) -> dict[tuple[str, tuple], float]:
    """Samples as {(name, sorted label items): value}."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def settings(tmp_path, pg_clean, redis_url):
    return Settings.from_env(
        {},
        database_url=pg_clean,
        broker_url=redis_url,
        storage_url=(tmp_path / "store").as_uri(),
        home=str(tmp_path),
        auth="off",
    )


@pytest.fixture
def client(settings):
    return create_app(settings).test_client()


def scrape(client) -> dict:
    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.mimetype == "text/plain"
    return parse(resp.get_data(as_text=True))


def submit(settings, queue: str, priority: int = 0) -> str:
    job = JobStore(settings.database_url).create(
        {"name": "j", "queue": queue, "priority": priority}, epochs=1, summary=None, max_attempts=3
    )
    enqueue(settings.broker_url, settings.home, job["id"], queue, priority)
    return job["id"]


def take_message(redis_url: str, queue: str) -> None:
    """What a worker does first: pop the next message of ``queue`` (highest priority)."""
    import redis

    r = redis.Redis.from_url(redis_url)
    try:
        assert r.brpop(queue_keys(queue, transport_options(redis_url, "")), timeout=2) is not None
    finally:
        r.close()


def test_figures_move_as_jobs_are_queued_claimed_lost_and_finished(settings, client):
    before = scrape(client)
    assert value(before, "fitfleet_jobs", state="queued") == 0
    assert value(before, "fitfleet_source_up", source="database") == 1
    assert value(before, "fitfleet_source_up", source="broker") == 1

    a1, a2 = submit(settings, "prom-a", 2), submit(settings, "prom-a", 7)
    submit(settings, "prom-b")
    s = scrape(client)
    assert value(s, "fitfleet_jobs", state="queued") == 3
    assert value(s, "fitfleet_queue_depth", queue="prom-a") == 2
    assert value(s, "fitfleet_queue_depth", queue="prom-b") == 1
    assert value(s, "fitfleet_jobs_waiting", queue="prom-b") == 1

    jobs = JobStore(settings.database_url)
    take_message(settings.broker_url, "prom-a")
    claim = jobs.claim(a2, "w1", lease_seconds=-1)  # a lease that has already run out
    assert claim is not None
    s = scrape(client)
    assert value(s, "fitfleet_queue_depth", queue="prom-a") == 1
    assert value(s, "fitfleet_jobs", state="running") == 1
    assert value(s, "fitfleet_jobs_waiting", queue="prom-a") == 1

    requeue, _ = jobs.reap()
    assert [j["id"] for j in requeue] == [a2]
    s = scrape(client)
    assert value(s, "fitfleet_attempts_lost_total") == 1
    assert value(s, "fitfleet_jobs", state="running") == 0

    claim = jobs.claim(a1, "w1", lease_seconds=30)
    jobs.finish(a1, claim.attempt_id, "succeeded")
    s = scrape(client)
    assert value(s, "fitfleet_jobs", state="succeeded") == 1
    assert value(s, "fitfleet_jobs", state="queued") == 2
    parts = {
        part: value(s, "fitfleet_project_job_seconds", project="default", part=part)
        for part in ("queued", "starting", "training", "lost")
    }
    assert parts["queued"] > 0  # and no batch was trained:
    assert parts["training"] == 0 and value(s, "fitfleet_project_goodput", project="default") == 0


def test_request_latency_is_a_histogram_by_route_and_status(client):
    for _ in range(3):
        assert client.get("/api/v1/jobs").status_code == 200
    assert client.get("/api/v1/jobs/nope").status_code == 404
    s = scrape(client)
    name = "fitfleet_api_request_duration_seconds"
    ok = value(s, f"{name}_count", method="GET", route="/api/v1/jobs", status="200")
    missing = value(s, f"{name}_count", method="GET", route="/api/v1/jobs/<job_id>", status="404")
    assert ok >= 3 and missing >= 1
    assert (
        value(s, f"{name}_bucket", method="GET", route="/api/v1/jobs", status="200", le="+Inf")
        == ok
    )


def test_a_broker_that_is_down_does_not_break_the_scrape(tmp_path, sqlite_url):
    settings = Settings.from_env(
        {},
        database_url=sqlite_url,
        home=str(tmp_path),
        auth="off",
        broker_url=f"redis://127.0.0.1:{free_port()}/0",
    )
    s = scrape(create_app(settings).test_client())
    assert value(s, "fitfleet_source_up", source="broker") == 0
    assert value(s, "fitfleet_source_up", source="database") == 1
    assert ("fitfleet_jobs", (("state", "queued"),)) in s


def test_higher_priority_is_served_first_on_redis(settings):
    import redis

    assert broker_priority(9) == 0 and broker_priority(0) == 9
    low, high = submit(settings, "prio"), submit(settings, "prio", 9)
    r = redis.Redis.from_url(settings.broker_url)
    try:
        first = r.brpop(queue_keys("prio", transport_options(settings.broker_url, "")), timeout=2)[
            1
        ].decode()
        second = r.brpop(queue_keys("prio", transport_options(settings.broker_url, "")), timeout=2)[
            1
        ].decode()
    finally:
        r.close()
    assert high in first and low in second


def test_worker_figures_are_served_on_their_own_port(sqlite_url):
    from workers import telemetry

    port = telemetry.serve(free_port()) or telemetry._served_port

    def scrape_worker():
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            return parse(resp.read().decode())

    before = scrape_worker()
    telemetry.lease_renewed("ok")
    telemetry.lease_renewed("lost")
    telemetry.rows_written(12)
    telemetry.checkpoint_uploaded(0.3)
    telemetry.checkpoint_saved(0.7, 2048)
    after = scrape_worker()

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("fitfleet_lease_renewals_total", outcome="ok") == 1
    assert moved("fitfleet_lease_renewals_total", outcome="lost") == 1
    assert moved("fitfleet_metric_rows_written_total") == 12
    assert moved("fitfleet_checkpoint_upload_seconds_count") == 1
    assert moved("fitfleet_checkpoint_save_seconds_sum") == pytest.approx(0.7)
    assert moved("fitfleet_checkpoint_bytes_total") == 2048


def test_heartbeat_and_metric_writer_count_what_they_did(sqlite_url):
    """The training side's one-line hooks: a real renewal and a real bulk write."""
    from service.store.metrics import MetricStore
    from workers import telemetry
    from workers.training.callbacks.position import Position
    from workers.training.callbacks.recorder import MetricsRecorder
    from workers.training.lease import Heartbeat

    jobs = JobStore(sqlite_url)
    job = jobs.create({"name": "t"}, epochs=1, summary=None, max_attempts=3)
    claim = jobs.claim(job["id"], "w", lease_seconds=30)
    renewals = telemetry.LEASE_RENEWALS.labels("ok")._value.get()
    rows = telemetry.METRIC_ROWS._value.get()
    pos = Position(steps_per_epoch=4, epochs=1, step=2, batch=2)
    Heartbeat(jobs, job["id"], claim.attempt_id, pos, 30, 1).beat()
    recorder = MetricsRecorder(MetricStore(sqlite_url), job["id"], 1, pos, flush_seconds=60)
    recorder.on_train_batch_end(1, {"loss": 1.0})
    assert recorder.close(timeout=5)
    assert telemetry.LEASE_RENEWALS.labels("ok")._value.get() == renewals + 1
    assert telemetry.METRIC_ROWS._value.get() == rows + 1


def test_latency_is_summed_over_server_processes_in_multiprocess_mode(tmp_path, sqlite_url):
    """With PROMETHEUS_MULTIPROC_DIR, a scrape sees requests other processes answered."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    code = (
        "import json, os, sys\n"
        "from service.core.config import Settings\n"
        "from service.ops.prometheus import prepare_multiprocess\n"
        "from service.web.app import create_app\n"
        "prepare_multiprocess() if sys.argv[1] == 'first' else None\n"
        f"s = Settings.from_env({{}}, database_url={sqlite_url!r}, home={str(tmp_path)!r},"
        " auth='off')\n"
        "c = create_app(s).test_client()\n"
        "c.get('/healthz')\n"
        "print(json.dumps(c.get('/metrics').get_data(as_text=True)))\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom")}
    outs = []
    for which in ("first", "second"):
        proc = subprocess.run(
            [sys.executable, "-c", code, which],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        outs.append(parse(json.loads(proc.stdout.strip().splitlines()[-1])))
    name = "fitfleet_api_request_duration_seconds_count"
    labels = {"method": "GET", "route": "/healthz", "status": "200"}
    assert value(outs[0], name, **labels) == 1
    assert value(outs[1], name, **labels) == 2  # the first process's request is counted too
    assert value(outs[1], "fitfleet_jobs", state="queued") == 0
