"""The job event timeline in the store: appends inside transitions, cursor reads, scope."""

from __future__ import annotations

import pytest
from test_jobs import new_job

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
