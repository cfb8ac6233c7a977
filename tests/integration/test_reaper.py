"""The reaper on a Redis broker: an expired lease puts the job back on its queue."""

from __future__ import annotations

import base64
import json
import threading
import time

import pytest
import redis

from service.core.config import Settings
from service.ops import reaper
from service.store.jobs import JobStore

SPEC = {
    "name": "reaped",
    "model": {"class_name": "Sequential", "config": {}},
    "compile": {"loss": "mse"},
    "data": {"train": "file:///tmp/x.npz"},
}


@pytest.fixture
def settings(pg_clean, redis_url, tmp_path):
    return Settings.from_env(
        {},
        database_url=pg_clean,
        broker_url=redis_url,
        home=str(tmp_path),
        lease_seconds=0.2,
        reaper_interval=0.1,
    )


def queued_messages(redis_url: str, queue: str = "default") -> list[dict]:
    """Celery messages waiting in ``queue`` (and its priority sub-queues) on Redis."""
    client = redis.Redis.from_url(redis_url)
    try:
        keys = [queue.encode()] + sorted(client.keys(f"{queue}:*"))
        raw = [m for k in keys if client.type(k) == b"list" for m in client.lrange(k, 0, -1)]
    finally:
        client.close()
    out = []
    for item in raw:
        message = json.loads(item)
        body = message["body"]
        if message["properties"].get("body_encoding") == "base64":
            body = base64.b64decode(body)
        out.append({"task": message["headers"]["task"], "body": json.loads(body)})
    return out


def expired_job(store: JobStore, max_attempts: int = 3) -> str:
    job = store.create(SPEC, epochs=1, summary=None, max_attempts=max_attempts)
    assert store.claim(job["id"], "ghost@nowhere", 0.05) is not None
    time.sleep(0.15)
    return job["id"]


def test_sweep_requeues_and_enqueues(settings, redis_url):
    store = JobStore(settings.database_url)
    job_id = expired_job(store)
    assert queued_messages(redis_url) == []
    sent, failed = reaper.sweep(settings)
    assert sent == [job_id] and failed == []
    assert store.get(job_id)["state"] == "queued"
    assert [a["state"] for a in store.attempts(job_id)] == ["lost"]
    messages = queued_messages(redis_url)
    assert len(messages) == 1
    assert messages[0]["task"] == "fitfleet.train"
    assert messages[0]["body"][0] == [job_id]


def test_sweep_leaves_live_jobs_and_fails_exhausted_ones(settings, redis_url):
    store = JobStore(settings.database_url)
    live = store.create(SPEC, epochs=1, summary=None, max_attempts=3)["id"]
    store.claim(live, "healthy", 60)
    exhausted = expired_job(store, max_attempts=1)
    sent, failed = reaper.sweep(settings)
    assert sent == [] and failed == [exhausted]
    assert store.get(live)["state"] == "running"
    assert store.get(exhausted)["error"]["code"] == "max_attempts_exceeded"
    assert queued_messages(redis_url) == []


def test_run_sweeps_until_stopped(settings, redis_url):
    store = JobStore(settings.database_url)
    stop = threading.Event()
    thread = threading.Thread(target=reaper.run, args=(settings, stop), daemon=True)
    thread.start()
    try:
        job_id = expired_job(store)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not queued_messages(redis_url):
            time.sleep(0.05)
        assert [m["body"][0] for m in queued_messages(redis_url)] == [[job_id]]
        assert store.get(job_id)["state"] == "queued"
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
