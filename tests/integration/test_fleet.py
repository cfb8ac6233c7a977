"""The fleet view: workers reporting themselves, queue depths read from the broker."""

from __future__ import annotations

import os
import time
from types import SimpleNamespace

import pytest

from service.core.celery_config import celery_config
from service.core.config import Settings, reset_settings
from service.core.dispatch import TRAIN_TASK, enqueue
from service.ops.broker import queue_keys
from service.store.fleet import FleetStore, fleet_view, queue_depths
from service.store.jobs import JobStore
from service.web.app import create_app


def settings_for(db_url: str, broker_url: str, home) -> Settings:
    return Settings.from_env(
        {},
        database_url=db_url,
        broker_url=broker_url,
        home=str(home),
        storage_url=(home / "store").as_uri(),
        auth="off",
        heartbeat_seconds=0.2,
        lease_seconds=1.0,
    )


def test_workers_report_idle_busy_stopped_and_go_lost_when_silent(db_url):
    store = FleetStore(db_url)
    job_id = JobStore(db_url).create(
        {"name": "j", "model": {}}, epochs=1, summary=None, max_attempts=3
    )["id"]
    common = {"hostname": "h1", "pid": 11, "queues": ["default", "gpu"]}
    store.report("a@h1:11", state="idle", **common)
    store.report("b@h1:12", state="busy", job_id=job_id, **{**common, "pid": 12})
    store.report("c@h1:13", state="stopped", **{**common, "pid": 13})
    by_name = {w["name"]: w for w in store.workers(stale_after=60)}
    assert by_name["a@h1:11"]["state"] == "idle" and by_name["a@h1:11"]["job_id"] is None
    assert by_name["b@h1:12"]["state"] == "busy" and by_name["b@h1:12"]["job_id"] == job_id
    assert by_name["c@h1:13"]["state"] == "stopped"
    assert by_name["a@h1:11"]["queues"] == ["default", "gpu"]
    time.sleep(0.3)
    store.report("a@h1:11", state="idle", **common)  # a fresh heartbeat
    states = {w["name"]: w["state"] for w in store.workers(stale_after=0.2)}
    assert states == {"a@h1:11": "idle", "b@h1:12": "lost", "c@h1:13": "stopped"}
    shown = [w["name"] for w in store.workers(stale_after=60, include_stopped=False)]
    assert "c@h1:13" not in shown
    store.report("b@h1:12", state="busy", job_id=job_id, **{**common, "pid": 12})
    mine = {w["name"]: w for w in store.workers(stale_after=60, project="default")}
    other = {w["name"]: w for w in store.workers(stale_after=60, project="elsewhere")}
    assert mine["b@h1:12"]["job_id"] == job_id
    assert other["b@h1:12"]["state"] == "busy" and other["b@h1:12"]["job_id"] is None


def test_busy_worker_shows_when_its_attempt_last_renewed_the_lease(sqlite_url):
    jobs, store = JobStore(sqlite_url), FleetStore(sqlite_url)
    job_id = jobs.create({"name": "j", "model": {}}, epochs=1, summary=None, max_attempts=3)["id"]
    claim = jobs.claim(job_id, "w@h:5", 30)
    jobs.renew(job_id, claim.attempt_id, 30, {"step": 3})
    store.report("w@h:5", hostname="h", pid=5, queues=["default"], state="busy", job_id=job_id)
    (worker,) = store.workers(stale_after=60)
    assert worker["lease_renewed_at"] is not None and worker["job_state"] == "running"
    assert attempt_heartbeat(jobs, job_id) == worker["lease_renewed_at"]


def attempt_heartbeat(jobs: JobStore, job_id: str) -> str:
    return jobs.attempts(job_id)[-1]["heartbeat_at"]


def test_presence_thread_and_celery_signals_keep_the_row(sqlite_url, tmp_path, monkeypatch):
    from workers import presence

    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("FITFLEET_HEARTBEAT_SECONDS", "0.1")
    monkeypatch.setenv("FITFLEET_WORKER_NAME", "sig@test")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    reset_settings()
    try:
        consumer = SimpleNamespace(
            task_consumer=SimpleNamespace(
                queues=[SimpleNamespace(name="gpu"), SimpleNamespace(name="default")]
            )
        )
        presence._on_ready(sender=consumer)
        store = FleetStore(sqlite_url)
        (row,) = store.workers(stale_after=60)
        assert row["name"] == f"sig@test:{os.getpid()}" and row["state"] == "idle"
        assert row["queues"] == ["default", "gpu"] and row["gpus"] == 2
        first = row["heartbeat_at"]
        time.sleep(0.35)
        assert store.workers(stale_after=60)[0]["heartbeat_at"] > first  # the thread beats
        presence._on_task_start(task=SimpleNamespace(name=TRAIN_TASK), args=["job42"])
        assert store.workers(stale_after=60)[0]["job_id"] == "job42"
        presence._on_task_end()
        assert store.workers(stale_after=60)[0]["state"] == "idle"
        presence._on_shutdown()
        time.sleep(0.25)
        assert store.workers(stale_after=60)[0]["state"] == "stopped"
    finally:
        if presence._current is not None:
            presence._current.stop()
        presence._current = None
        reset_settings()


def test_redis_queue_depth_counts_every_priority_list(redis_url, tmp_path):
    import redis

    home = str(tmp_path)
    for priority in (0, 0, 4, 9):
        enqueue(redis_url, home, f"job-{priority}", "gpu", priority)
    enqueue(redis_url, home, "job-x", "default", 0)
    options = celery_config(redis_url, home)["broker_transport_options"]
    client = redis.Redis.from_url(redis_url)
    used = [k for k in queue_keys("gpu", options) if client.llen(k)]
    client.close()
    assert len(used) == 3  # kombu spreads the priorities over separate lists
    depths = queue_depths(redis_url, home, ["gpu", "default", "empty"])
    assert depths == {"gpu": 4, "default": 1, "empty": 0}
    assert queue_keys("q", {})[0] == "q" and queue_keys("q", {})[1] == "q\x06\x163"


def test_file_broker_queue_depth_counts_message_files(tmp_path):
    home = str(tmp_path)
    enqueue("filesystem://", home, "a", "default", 0)
    enqueue("filesystem://", home, "b", "default", 5)
    enqueue("filesystem://", home, "c", "cpu.small", 0)
    assert queue_depths("filesystem://", home, ["default", "cpu.small", "x"]) == {
        "default": 2,
        "cpu.small": 1,
        "x": 0,
    }


def test_unreachable_broker_gives_unknown_depths(tmp_path):
    assert queue_depths("redis://127.0.0.1:1/0", str(tmp_path), ["default"]) == {"default": None}


def test_fleet_endpoint_joins_workers_queues_and_job_counts(pg_clean, redis_url, tmp_path):
    settings = settings_for(pg_clean, redis_url, tmp_path)
    jobs = JobStore(pg_clean)
    for queue in ("default", "gpu", "gpu"):
        job = jobs.create(
            {"name": "j", "model": {}, "queue": queue}, epochs=1, summary=None, max_attempts=3
        )
        enqueue(redis_url, str(tmp_path), job["id"], queue, 3)
    FleetStore(pg_clean).report("w1@h:1", hostname="h", pid=1, queues=["gpu", "tpu"], state="idle")
    body = create_app(settings).test_client().get("/api/v1/fleet").get_json()
    queues = {q["name"]: q for q in body["queues"]}
    assert set(queues) == {"default", "gpu", "tpu"}
    assert queues["gpu"]["depth"] == 2 and queues["gpu"]["queued_jobs"] == 2
    assert queues["gpu"]["workers"] == 1 and queues["default"]["workers"] == 0
    assert queues["tpu"]["depth"] == 0
    assert [w["name"] for w in body["workers"]] == ["w1@h:1"]
    assert body["stale_after_seconds"] == pytest.approx(1.0)
    assert fleet_view(settings)["queues"] == body["queues"]


def test_one_process_name_for_the_claim_the_presence_row_and_the_parent(monkeypatch):
    """The task claims, the presence row reports and the parent releases under one name."""
    import socket

    from workers import presence, supervisor

    monkeypatch.setenv("FITFLEET_WORKER_NAME", "w@h")
    assert presence.process_name() == f"w@h:{os.getpid()}"
    assert presence.process_name(77, {}, "pool@h-0") == "pool@h-0:77"  # a child, by its slot
    assert presence.process_name(77, {"FITFLEET_WORKER_NAME": "set"}, "pool@h-0") == "set:77"
    monkeypatch.delenv("FITFLEET_WORKER_NAME")
    assert presence.process_name() == f"{socket.gethostname()}:{os.getpid()}"
    assert supervisor.process_name is presence.process_name
    pytest.importorskip("keras")  # the task module loads TensorFlow
    from workers import tasks

    assert tasks.process_name is presence.process_name and not hasattr(tasks, "worker_name")
