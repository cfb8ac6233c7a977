"""The gang store on SQLite (tests/integration/test_gang_store.py runs the same checks on
PostgreSQL): all N members or none, one attempt row each, leaving, breaking, reaping."""

from __future__ import annotations

import time

import pytest

from service.core.errors import LeaseLost
from service.store.gangs import GangStore, gang_size
from service.store.jobs import JobStore

TWO = {"strategy": "multi_worker_mirrored", "workers": 2}


def new_job(url: str, workers: int = 2, max_attempts: int = 3) -> str:
    spec = {"name": "g", "distribute": {**TWO, "workers": workers}, "queue": "default"}
    return JobStore(url).create(spec, epochs=1, summary=None, max_attempts=max_attempts)["id"]


def check_all_or_none(url: str) -> None:
    gangs, jobs = GangStore(url), JobStore(url)
    job_id = new_job(url)
    first = gangs.join(job_id, "w1", "10.0.0.1:29400", 10)
    assert (first.rank, first.size, first.filled) == (0, 2, False)
    assert gangs.formed(first) is None
    assert jobs.get(job_id)["state"] == "queued"
    assert jobs.attempts(job_id) == []
    second = gangs.join(job_id, "w2", "10.0.0.2:29400", 10)
    assert (second.rank, second.filled) == (1, True)
    assert gangs.join(job_id, "w3", "10.0.0.3:29400", 10) is None  # full, and running
    chief, member = gangs.formed(first), gangs.formed(second)
    assert chief.addresses == member.addresses == ["10.0.0.1:29400", "10.0.0.2:29400"]
    assert chief.claim.attempt_id != member.claim.attempt_id
    job = jobs.get(job_id)
    assert job["state"] == "running"
    attempts = jobs.attempts(job_id)
    assert [(a["worker"], a["state"], a["number"]) for a in attempts] == [
        ("w1", "running", 1),
        ("w2", "running", 1),
    ]
    # The chief's attempt is the job's: its fenced writes work, the member's are refused.
    assert jobs.renew(job_id, chief.claim.attempt_id, 10) is False
    with pytest.raises(LeaseLost):
        jobs.renew(job_id, member.claim.attempt_id, 10)
    assert gangs.renew(job_id, member.claim.attempt_id, 10, {"step": 3}) is False
    # The chief ends the job; the member still finishing its last step keeps its lease.
    jobs.finish(job_id, chief.claim.attempt_id, "succeeded")
    assert gangs.renew(job_id, member.claim.attempt_id, 10) is False
    assert gangs.running_members(chief.gang_id) == 1
    assert gangs.reap(lease_seconds=5, form_seconds=1) == []
    gangs.end_member(member.claim.attempt_id, "succeeded")
    assert gangs.reap(lease_seconds=5, form_seconds=1) == []
    with pytest.raises(LeaseLost):  # the gang ended with its last member
        gangs.renew(job_id, member.claim.attempt_id, 10)
    assert [a["state"] for a in jobs.attempts(job_id)] == ["succeeded", "succeeded"]


def check_leave_and_rejoin(url: str) -> None:
    gangs = GangStore(url)
    job_id = new_job(url)
    first = gangs.join(job_id, "w1", "a:1", 10)
    assert [j["id"] for j in gangs.forming(older_than=0)] == [job_id]  # the reaper re-sends
    assert gangs.forming(older_than=60) == []
    assert gangs.leave(first) is True
    assert gangs.forming(older_than=0) == []
    with pytest.raises(LeaseLost):
        gangs.formed(first)  # the last member out ended that gang
    again = gangs.join(job_id, "w1", "a:1", 10)
    assert again.gang_id != first.gang_id and again.rank == 0
    other = gangs.join(job_id, "w2", "b:1", 10)
    assert other.filled
    assert gangs.leave(again) is False  # formed meanwhile: it stays and trains
    assert gangs.formed(again).rank == 0


def check_break_requeues_once(url: str) -> None:
    gangs, jobs = GangStore(url), JobStore(url)
    job_id = new_job(url)
    a = gangs.join(job_id, "w1", "a:1", 10)
    b = gangs.join(job_id, "w2", "b:1", 10)
    member = gangs.formed(b)
    job = gangs.break_gang(a.gang_id, "gang_member_lost", "member 1 died")
    assert job["id"] == job_id
    assert gangs.break_gang(a.gang_id, "gang_member_lost", "again") is None
    assert jobs.get(job_id)["state"] == "queued"
    assert [x["state"] for x in jobs.attempts(job_id)] == ["lost", "lost"]
    with pytest.raises(LeaseLost):
        gangs.renew(job_id, member.claim.attempt_id, 10)
    c = gangs.join(job_id, "w3", "c:1", 10)
    d = gangs.join(job_id, "w1", "a:1", 10)
    assert c.gang_id == d.gang_id != a.gang_id and d.filled
    assert gangs.formed(c).claim.number == 2


def check_reap_breaks_silent_gang(url: str) -> None:
    gangs, jobs = GangStore(url), JobStore(url)
    job_id = new_job(url)
    a = gangs.join(job_id, "w1", "a:1", 10)
    gangs.join(job_id, "w2", "b:1", 10)
    chief = gangs.formed(a)
    assert gangs.reap(lease_seconds=5, form_seconds=1) == []
    time.sleep(0.3)
    jobs.renew(job_id, chief.claim.attempt_id, 10)  # the chief lives, member 1 went silent
    requeue = gangs.reap(lease_seconds=0.2, form_seconds=1)
    assert [j["id"] for j in requeue] == [job_id]
    assert jobs.get(job_id)["state"] == "queued"


def test_gang_size():
    assert gang_size({"distribute": TWO}) == 2
    assert gang_size({"distribute": "mirrored"}) == 1
    assert gang_size({}) == 1


def test_all_or_none(sqlite_url):
    check_all_or_none(sqlite_url)


def test_leave_and_rejoin(sqlite_url):
    check_leave_and_rejoin(sqlite_url)


def test_break_requeues_once(sqlite_url):
    check_break_requeues_once(sqlite_url)


def test_reap_breaks_silent_gang(sqlite_url):
    check_reap_breaks_silent_gang(sqlite_url)
