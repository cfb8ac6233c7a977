"""The job event timeline in the store: appends inside transitions, cursor reads, scope."""

from __future__ import annotations

import time

import pytest
from test_jobs import SHORT, checkpoint, new_job

from service.core.errors import BadRequest, NotFound
from service.store import events
from service.store.db import session_scope
from service.store.jobs import JobStore


@pytest.fixture
def store(db_url):
    return JobStore(db_url)


def test_appended_events_are_read_in_order_with_a_cursor(store):
    job = new_job(store)
    for step in (5, 10, 15):
        with session_scope(store.url) as s:
            events.append(s, job["id"], events.CHECKPOINT, attempt=1, data={"step": step})
    first = events.list_events(store.url, job["id"], limit=2)
    steps = [e["data"].get("step") for e in first["events"] if e["type"] == events.CHECKPOINT]
    assert len(first["events"]) == 2
    rest = events.list_events(store.url, job["id"], after=first["next"])
    steps += [e["data"]["step"] for e in rest["events"] if e["type"] == events.CHECKPOINT]
    assert steps == [5, 10, 15]
    again = events.list_events(store.url, job["id"], after=rest["next"])
    assert again == {"events": [], "next": rest["next"]}
    assert all(e["attempt"] == 1 for e in rest["events"])


def test_an_event_rolls_back_with_its_transition(store):
    job = new_job(store)
    before = events.list_events(store.url, job["id"])["events"]
    with pytest.raises(RuntimeError), session_scope(store.url) as s:
        events.append(s, job["id"], events.PREEMPTED, data={"reason": "test"})
        raise RuntimeError("the transition failed")
    assert events.list_events(store.url, job["id"])["events"] == before


def test_reads_are_scoped_to_the_project_and_check_the_cursor(store):
    job = new_job(store)
    with pytest.raises(NotFound):
        events.list_events(store.url, job["id"], project="other")
    with pytest.raises(NotFound):
        events.list_events(store.url, "\x00" * 32)
    with pytest.raises(BadRequest):
        events.list_events(store.url, job["id"], after=2**63)
    with pytest.raises(ValueError), session_scope(store.url) as s:
        events.append(s, job["id"], "no_such_type")


def types(store, job_id) -> list[tuple]:
    return [(e["type"], e["attempt"]) for e in events.list_events(store.url, job_id)["events"]]


def test_each_transition_appends_its_event(store):
    job = new_job(store)
    first = store.claim(job["id"], "w1", 60)
    store.commit_checkpoint(job["id"], first.attempt_id, checkpoint(5), {"blocked_seconds": 0.01})
    assert store.note(job["id"], first.attempt_id, events.FIRST_BATCH, {"step": 1})
    store.release(job["id"], first.attempt_id, "the worker was asked to stop")
    assert not store.note(job["id"], first.attempt_id, events.FIRST_BATCH, {"step": 2})
    second = store.claim(job["id"], "w2", SHORT)
    time.sleep(SHORT * 3)
    store.reap()
    third = store.claim(job["id"], "w3", 60)
    store.finish(job["id"], third.attempt_id, "failed", error_code="training_error")
    assert types(store, job["id"]) == [
        ("submitted", None),
        ("queued", None),
        ("claimed", 1),
        ("checkpoint", 1),
        ("first_batch", 1),
        ("preempted", 1),
        ("released", 1),
        ("requeued", 1),
        ("claimed", 2),
        ("lease_lost", 2),
        ("requeued", 2),
        ("claimed", 3),
        ("finished", 3),
    ]
    got = events.list_events(store.url, job["id"])["events"]
    assert got[2]["data"]["worker"] == "w1" and got[2]["data"]["host"]
    assert got[3]["data"] == {"step": 5, "bytes": 10, "blocked_seconds": 0.01}
    assert got[-1]["data"]["error_code"] == "training_error"
    assert second.number == 2


def test_cancel_and_a_takeover_of_an_expired_lease(store):
    queued = new_job(store)
    store.request_cancel(queued["id"])
    assert types(store, queued["id"])[-2:] == [("cancelled", None), ("finished", None)]
    job = new_job(store)
    store.claim(job["id"], "w1", SHORT)
    time.sleep(SHORT * 3)
    store.claim(job["id"], "w2", 60)  # takes over the expired lease
    store.request_cancel(job["id"])
    store.request_cancel(job["id"])  # asked twice: one event
    assert types(store, job["id"])[2:] == [
        ("claimed", 1),
        ("lease_lost", 1),
        ("claimed", 2),
        ("cancelled", None),
    ]
