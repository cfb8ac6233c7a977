"""JobStore state transitions and fencing, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time

import pytest

from service.core.errors import Conflict, LeaseLost
from service.store.jobs import JobStore

SPEC = {
    "name": "tiny",
    "model": {"class_name": "Sequential", "config": {}},
    "compile": {"loss": "mse"},
    "data": {"train": "file:///tmp/x.npz"},
}
SHORT = 0.05  # seconds: a lease that has expired by the time the test looks again
LONG = 60.0


def new_job(store: JobStore, max_attempts: int = 3, name: str = "tiny") -> dict:
    return store.create({**SPEC, "name": name}, epochs=2, summary=None, max_attempts=max_attempts)


def expired_claim(store: JobStore, job_id: str, worker: str):
    """Claim the job with a lease that runs out at once."""
    claim = store.claim(job_id, worker, SHORT)
    assert claim is not None
    time.sleep(SHORT * 3)
    return claim


def checkpoint(step: int) -> dict:
    return {
        "step": step,
        "epoch": 0,
        "batch": step,
        "uri": f"file:///cp/{step}",
        "files": {"model": "model.keras"},
        "bytes": 10,
        "sha256": "0" * 64,
        "logs": {"loss": 1.0 / (step + 1)},
    }


@pytest.fixture
def store(db_url):
    return JobStore(db_url)


def test_create_and_get(store):
    job = new_job(store)
    got = store.get(job["id"])
    assert got["state"] == "queued"
    assert got["name"] == "tiny"
    assert got["attempts"] == 0 and got["max_attempts"] == 3
    assert got["progress"]["epochs"] == 2
    assert got["spec"]["compile"] == {"loss": "mse"}
    assert got["latest_checkpoint"] is None and got["error"] is None


def test_list_pages_newest_first(store):
    ids = [new_job(store, name=f"j{i}")["id"] for i in range(5)]
    seen, cursor, pages = [], None, 0
    while True:
        jobs, cursor = store.list(None, 2, cursor)
        pages += 1
        assert len(jobs) <= 2
        seen += [j["id"] for j in jobs]
        if cursor is None:
            break
    assert seen == ids[::-1]
    assert pages == 3
    store.request_cancel(ids[0])
    cancelled, nxt = store.list("cancelled", 10, None)
    assert [j["id"] for j in cancelled] == [ids[0]] and nxt is None


def test_second_claim_during_live_lease_gets_nothing(store):
    job = new_job(store)
    first = store.claim(job["id"], "w1", LONG)
    assert first is not None and first.number == 1
    assert store.claim(job["id"], "w2", LONG) is None
    got = store.get(job["id"])
    assert got["state"] == "running" and got["worker"] == "w1" and got["attempts"] == 1


def test_claim_after_expiry_marks_previous_attempt_lost(store):
    job = new_job(store)
    expired_claim(store, job["id"], "w1")
    second = store.claim(job["id"], "w2", LONG)
    assert second is not None and second.number == 2
    attempts = store.attempts(job["id"])
    assert [(a["number"], a["worker"], a["state"]) for a in attempts] == [
        (1, "w1", "lost"),
        (2, "w2", "running"),
    ]
    assert attempts[0]["error"]["code"] == "lease_expired"


def test_renew_is_fenced_and_reports_cancel(store):
    job = new_job(store)
    stale = expired_claim(store, job["id"], "w1")
    current = store.claim(job["id"], "w2", LONG)
    with pytest.raises(LeaseLost):
        store.renew(job["id"], stale.attempt_id, LONG)
    assert (
        store.renew(job["id"], current.attempt_id, LONG, {"epoch": 1, "batch": 3, "step": 7})
        is False
    )
    assert store.get(job["id"])["progress"]["step"] == 7
    store.request_cancel(job["id"])
    assert store.get(job["id"])["state"] == "running"
    assert store.renew(job["id"], current.attempt_id, LONG) is True


def test_stale_checkpoint_commit_moves_nothing(store):
    job = new_job(store)
    stale = expired_claim(store, job["id"], "w1")
    current = store.claim(job["id"], "w2", LONG)
    store.commit_checkpoint(job["id"], current.attempt_id, checkpoint(10))
    with pytest.raises(LeaseLost):
        store.commit_checkpoint(job["id"], stale.attempt_id, checkpoint(20))
    assert store.get(job["id"])["latest_checkpoint"]["step"] == 10
    assert [c["step"] for c in store.checkpoints(job["id"])] == [10]
    store.commit_checkpoint(job["id"], current.attempt_id, checkpoint(20))
    assert store.get(job["id"])["latest_checkpoint"]["step"] == 20
    assert [c["step"] for c in store.checkpoints(job["id"])] == [10, 20]


def test_claim_returns_checkpoints_newest_first(store):
    job = new_job(store)
    first = expired_claim(store, job["id"], "w1")
    store.commit_checkpoint(job["id"], first.attempt_id, checkpoint(5))
    store.commit_checkpoint(job["id"], first.attempt_id, checkpoint(9))
    time.sleep(SHORT)
    second = store.claim(job["id"], "w2", LONG)
    assert [c["step"] for c in second.checkpoints] == [9, 5]


def test_finish_is_fenced(store):
    job = new_job(store)
    stale = expired_claim(store, job["id"], "w1")
    current = store.claim(job["id"], "w2", LONG)
    with pytest.raises(LeaseLost):
        store.finish(job["id"], stale.attempt_id, "succeeded")
    assert store.get(job["id"])["state"] == "running"
    store.finish(job["id"], current.attempt_id, "succeeded", model_uri="file:///m.keras")
    done = store.get(job["id"])
    assert done["state"] == "succeeded" and done["finished_at"] is not None
    assert done["model_available"] is True
    with pytest.raises(LeaseLost):
        store.finish(job["id"], current.attempt_id, "failed", error_code="boom")
    assert store.get(job["id"])["state"] == "succeeded"


def test_release_gives_the_job_back(store):
    job = new_job(store)
    claim = store.claim(job["id"], "w1", LONG)
    assert store.release(job["id"], claim.attempt_id, "SIGTERM") is True
    got = store.get(job["id"])
    assert got["state"] == "queued" and got["worker"] is None
    assert store.attempts(job["id"])[0]["state"] == "preempted"
    assert store.release(job["id"], claim.attempt_id, "again") is False
    again = store.claim(job["id"], "w2", LONG)
    assert again is not None and again.number == 2


def test_reap_requeues_then_fails_out_of_attempts(store):
    job = new_job(store, max_attempts=2)
    live = new_job(store, name="live")
    store.claim(live["id"], "healthy", LONG)
    expired_claim(store, job["id"], "w1")
    requeue, failed = store.reap()
    assert [r["id"] for r in requeue] == [job["id"]] and failed == []
    assert requeue[0]["queue"] == "default"
    assert store.get(job["id"])["state"] == "queued"
    assert store.attempts(job["id"])[0]["state"] == "lost"
    assert store.get(live["id"])["state"] == "running"

    expired_claim(store, job["id"], "w2")
    requeue, failed = store.reap()
    assert requeue == [] and failed == [job["id"]]
    ended = store.get(job["id"])
    assert ended["state"] == "failed"
    assert ended["error"]["code"] == "max_attempts_exceeded"
    assert store.claim(job["id"], "w3", LONG) is None


def test_request_cancel(store):
    queued = new_job(store)
    assert store.request_cancel(queued["id"])["state"] == "cancelled"
    with pytest.raises(Conflict):
        store.request_cancel(queued["id"])
    running = new_job(store)
    claim = store.claim(running["id"], "w1", LONG)
    store.finish(running["id"], claim.attempt_id, "succeeded")
    with pytest.raises(Conflict):
        store.request_cancel(running["id"])


def test_claim_is_exclusive_under_a_race(pg_clean):
    store = JobStore(pg_clean)
    job = new_job(store)
    barrier = threading.Barrier(10)
    results = [None] * 10

    def contender(i: int) -> None:
        barrier.wait()
        results[i] = store.claim(job["id"], f"w{i}", LONG)

    threads = [threading.Thread(target=contender, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    assert store.get(job["id"])["attempts"] == 1
    assert len(store.attempts(job["id"])) == 1


def test_a_state_outside_the_job_states_is_refused_by_the_database(db_url):
    import sqlalchemy
    from sqlalchemy import text

    from service.store.db import get_engine

    job = new_job(JobStore(db_url))
    with (
        pytest.raises(sqlalchemy.exc.IntegrityError, match="ck_jobs_state|CHECK"),
        get_engine(db_url).begin() as conn,
    ):
        conn.execute(text("UPDATE jobs SET state = 'finished' WHERE id = :id"), {"id": job["id"]})
    assert JobStore(db_url).get(job["id"])["state"] == "queued"


def test_one_list_of_job_states_shared_by_the_client():
    from fitfleet import client
    from service.store.tables import ENDED, STATES, JobState

    assert (
        STATES
        == tuple(s.value for s in JobState)
        == ("queued", "running", "succeeded", "failed", "cancelled")
    )
    assert client.ENDED == ENDED


def lost_count(url: str, job_id: str) -> int:
    from sqlalchemy import text

    from service.store.db import get_engine

    with get_engine(url).connect() as conn:
        return conn.execute(
            text("SELECT lost_attempts FROM jobs WHERE id = :i"), {"i": job_id}
        ).scalar_one()


def test_a_takeover_of_an_expired_lease_counts_a_lost_attempt(store):
    """A redelivered message that beats the reaper still uses up an attempt."""
    job = new_job(store, max_attempts=2)
    expired_claim(store, job["id"], "w1")
    second = store.claim(job["id"], "w2", 1.0)  # no reaper ran in between
    assert second is not None and lost_count(store.url, job["id"]) == 1
    assert store.reap() == ([], [])  # the lease is live: the reaper counts nothing more
    time.sleep(1.5)  # a second lease long enough to outlast a loaded machine's queries
    assert store.claim(job["id"], "w3", LONG) is None  # the last attempt was lost: no third
    ended = store.get(job["id"])
    assert ended["state"] == "failed" and ended["attempts"] == 2
    assert ended["error"]["code"] == "max_attempts_exceeded"
    assert "lost 2 times (max_attempts=2)" in ended["error"]["message"]
    assert lost_count(store.url, job["id"]) == 2
    assert [(a["worker"], a["state"]) for a in store.attempts(job["id"])] == [
        ("w1", "lost"),
        ("w2", "lost"),
    ]
    assert store.reap() == ([], [])  # nothing left for the reaper to count again


def test_takeover_and_reaper_count_each_lost_attempt_once(store):
    job = new_job(store, max_attempts=3)
    expired_claim(store, job["id"], "w1")
    requeue, _ = store.reap()  # the reaper first ...
    assert [r["id"] for r in requeue] == [job["id"]]
    assert store.claim(job["id"], "w2", LONG) is not None  # ... then the redelivery
    assert lost_count(store.url, job["id"]) == 1
    assert store.get(job["id"])["state"] == "running"


def test_a_dead_workers_job_is_released_at_once(store):
    job = new_job(store, max_attempts=2)
    other = new_job(store, name="other")
    claim = store.claim(job["id"], "host-0:11", LONG)
    store.claim(other["id"], "host-1:12", LONG)
    requeue, failed = store.release_lost(
        "host-0:11", "worker_died", "the worker process died (SIGKILL)"
    )
    assert [r["id"] for r in requeue] == [job["id"]] and failed == []
    got = store.get(job["id"])
    assert got["state"] == "queued" and got["worker"] is None
    assert lost_count(store.url, job["id"]) == 1
    (attempt,) = store.attempts(job["id"])
    assert attempt["state"] == "lost" and attempt["error"]["code"] == "worker_died"
    assert store.get(other["id"])["state"] == "running"  # another process's job is untouched
    with pytest.raises(LeaseLost):
        store.renew(job["id"], claim.attempt_id, LONG)
    assert store.release_lost("host-0:11", "worker_died", "again") == ([], [])
    again = store.claim(job["id"], "host-1:13", LONG)
    assert again.number == 2 and lost_count(store.url, job["id"]) == 1


def test_out_of_memory_every_time_says_so(store):
    job = new_job(store, max_attempts=2)
    oom = "the worker process was killed by the out-of-memory killer (memory limit 512 MiB)"
    for n in (1, 2):
        store.claim(job["id"], f"h-0:{n}", LONG)
        requeue, failed = store.release_lost(f"h-0:{n}", "resource_exhausted", oom)
    assert requeue == [] and failed == [job["id"]]
    ended = store.get(job["id"])
    assert ended["state"] == "failed" and ended["error"]["code"] == "resource_exhausted"
    message = ended["error"]["message"]
    assert "ran out of memory on every attempt (2 of max_attempts=2)" in message
    assert "512 MiB" in message
    assert [a["error"]["code"] for a in store.attempts(job["id"])] == ["resource_exhausted"] * 2


def test_out_of_memory_once_is_named_as_the_last_reason(store):
    job = new_job(store, max_attempts=2)
    expired_claim(store, job["id"], "w1")
    store.reap()
    store.claim(job["id"], "h-0:2", LONG)
    store.release_lost("h-0:2", "resource_exhausted", "killed by the out-of-memory killer")
    ended = store.get(job["id"])
    assert ended["error"]["code"] == "max_attempts_exceeded"
    assert "the last one: killed by the out-of-memory killer" in ended["error"]["message"]


def test_racing_takeovers_of_an_expired_lease_count_it_once(pg_clean):
    store = JobStore(pg_clean)
    job = new_job(store, max_attempts=3)
    expired_claim(store, job["id"], "w0")
    barrier = threading.Barrier(8)
    results = [None] * 8

    def contender(i: int) -> None:
        barrier.wait()
        results[i] = store.claim(job["id"], f"w{i + 1}", LONG)

    threads = [threading.Thread(target=contender, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len([r for r in results if r is not None]) == 1
    assert lost_count(pg_clean, job["id"]) == 1
    assert [a["state"] for a in store.attempts(job["id"])] == ["lost", "running"]


def test_postgresql_connections_time_out_instead_of_hanging(pg_url):
    """A network cut must not leave a writer waiting forever on a half-open connection."""
    from service.store.db import get_engine

    with get_engine(pg_url).connect() as conn:
        params = conn.connection.dbapi_connection.info.get_parameters()
    assert params["connect_timeout"] == "10" and params["keepalives"] == "1"
    assert params["keepalives_idle"] == "10" and params["tcp_user_timeout"] == "30000"
