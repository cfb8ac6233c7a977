"""Goodput: a job's wall time split by its events, on a made-up timeline."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from service.store.goodput import PARTS, split

T0 = datetime(2026, 12, 1, tzinfo=timezone.utc)


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def event(type: str, t: float, attempt: int | None = None, **data) -> dict:
    return {"type": type, "at": at(t), "attempt": attempt, "data": data}


def test_a_job_killed_once_and_released_once_splits_its_wall_time():
    events = [
        event("submitted", 0),
        event("queued", 0),
        event("claimed", 2, 1),  # 2 s queued
        event("first_batch", 5, 1),  # 3 s starting
        event("validated", 9, 1, seconds=1.5),
        event("checkpoint", 10, 1, blocked_seconds=0.5),
        event("lease_lost", 20, 1),  # last heartbeat at 16: 4 s lost
        event("requeued", 20, 1),
        event("claimed", 21, 2),  # 1 s queued
        event("first_batch", 24, 2),  # 3 s starting; redoing until 30
        event("preempted", 40, 2),
        event("released", 40, 2),
        event("requeued", 40, 2),
        event("claimed", 45, 3),  # 5 s queued
        event("first_batch", 46, 3),
        event("finished", 60, 3, state="succeeded"),
    ]
    attempts = [
        {"number": 1, "state": "lost", "heartbeat_at": at(16), "steps_redone": 0},
        {"number": 2, "state": "preempted", "heartbeat_at": at(39), "steps_redone": 12},
        {"number": 3, "state": "succeeded", "heartbeat_at": at(59), "steps_redone": 0},
    ]
    redo_until = {2: (T0 + timedelta(seconds=30)).timestamp()}
    got = split(T0, T0 + timedelta(seconds=60), events, attempts, redo_until)
    s = got["seconds"]
    assert got["wall_seconds"] == 60
    assert sum(s.values()) == 60 and set(s) == set(PARTS)
    assert s["queued"] == 8 and s["starting"] == 7 and s["lost"] == 4
    assert s["validation"] == 1.5 and s["checkpoint_blocked"] == 0.5 and s["redoing"] == 6
    assert s["training"] == 60 - 8 - 7 - 4 - 1.5 - 0.5 - 6
    assert got["steps_redone"] == 12 and got["goodput"] == round(s["training"] / 60, 4)
    assert [a["seconds"]["redoing"] for a in got["attempts"]] == [0, 6, 0]


def test_a_running_job_counts_up_to_now_and_a_queued_one_waits():
    running = split(
        T0,
        T0 + timedelta(seconds=10),
        [event("submitted", 0), event("claimed", 1, 1)],
        [{"number": 1, "state": "running", "heartbeat_at": at(9), "steps_redone": 0}],
        {},
    )
    assert running["seconds"]["queued"] == 1 and running["seconds"]["starting"] == 9
    waiting = split(T0, T0 + timedelta(seconds=7), [event("submitted", 0)], [], {})
    assert waiting["seconds"]["queued"] == 7 and waiting["goodput"] == 0
