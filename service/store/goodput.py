"""Goodput: where a job's wall time went, read from its event timeline.

A job's wall time (submitted to finished, or to now) splits into:

- ``queued``: waiting for a worker (first submission and every requeue);
- ``starting``: from a claim to the end of the attempt's first batch (model build, data
  load, restore, the first step's tracing); all of an attempt that never trained a batch;
- ``redoing``: training again the steps a lost or released attempt had done past the
  checkpoint the next one resumed from (its ``steps_redone``);
- ``checkpoint_blocked``: the training thread taking checkpoint snapshots;
- ``validation``: validation passes;
- ``lost``: a dead attempt holding the job, from its last lease renewal until it was
  found lost;
- ``training``: the rest of each attempt, the productive part.

The parts add up to the wall time. ``goodput`` is training's share of it. Redone steps
come from the attempts timeline (:func:`service.store.detail.timeline`), and the time they
took from the batch rows the redoing attempt wrote.
"""

from __future__ import annotations

import threading
from datetime import datetime

from sqlalchemy import select

from service.store import events as ev
from service.store.db import session_scope
from service.store.tables import ENDED, Attempt, Job, Metric, utcnow
from service.store.views import attempt_view

PARTS = ("queued", "starting", "training", "redoing", "checkpoint_blocked", "validation", "lost")
_ENDS = (ev.LEASE_LOST, ev.RELEASED, ev.FINISHED)
_cache: dict[str, dict] = {}  # ended jobs' splits: they no longer change
_cache_lock = threading.Lock()
CACHE_SIZE = 100_000


def job_goodput(url: str, job_id: str) -> dict:
    """The split of one job's wall time (see the module's docstring)."""
    with _cache_lock:
        if job_id in _cache:
            return _cache[job_id]
    with session_scope(url) as s:
        job = s.get(Job, job_id)
        if job is None:
            return empty()
        out = _job_split(s, job)
        ended = job.state in ENDED
    if ended:
        with _cache_lock:
            if len(_cache) >= CACHE_SIZE:
                _cache.clear()
            _cache[job_id] = out
    return out


def project_goodput(url: str) -> dict[str, dict]:
    """Per project: each part's seconds summed over its jobs, and the goodput share."""
    with session_scope(url) as s:
        jobs = s.execute(select(Job.id, Job.project)).all()
    out: dict[str, dict] = {}
    for job_id, project in jobs:
        split = job_goodput(url, job_id)
        total = out.setdefault(project, empty())
        total["wall_seconds"] += split["wall_seconds"]
        for part in PARTS:
            total["seconds"][part] += split["seconds"][part]
        total["steps_redone"] += split["steps_redone"]
    for total in out.values():
        _finish(total)
    return out


def empty() -> dict:
    return {
        "wall_seconds": 0.0,
        "seconds": dict.fromkeys(PARTS, 0.0),
        "goodput": None,
        "steps_redone": 0,
        "attempts": [],
    }


def _job_split(s, job: Job) -> dict:
    from service.store.detail import timeline

    attempts = timeline(
        [attempt_view(a) for a in s.scalars(select(Attempt).where(Attempt.job_id == job.id)).all()]
    )
    redo_until = {a["number"]: _redo_end(s, job.id, a) for a in attempts if a["steps_redone"]}
    end = job.finished_at or utcnow()
    return split(job.created_at, end, ev.job_events(s, job.id), attempts, redo_until)


def _redo_end(s, job_id: str, attempt: dict) -> float | None:
    """The wall time (Unix seconds) at which ``attempt`` finished redoing its steps."""
    step = attempt["resumed_from_step"] + attempt["steps_redone"]
    row = s.execute(
        select(Metric.wall_time, Metric.attempt).where(
            Metric.job_id == job_id, Metric.kind == "batch", Metric.step == step
        )
    ).first()
    return row.wall_time if row is not None and row.attempt == attempt["number"] else None


def split(
    created: datetime,
    end: datetime,
    events: list[dict],
    attempts: list[dict],
    redo_until: dict[int, float | None],
) -> dict:
    """The split of ``[created, end]`` given the job's events (oldest first), its attempts
    timeline and, per attempt that redid steps, when it was done redoing (Unix seconds)."""
    out = empty()
    out["wall_seconds"] = _seconds(created, end)
    seconds = out["seconds"]
    by_number = {a["number"]: a for a in attempts}
    since, current = created, None  # the queued period's start; the attempt's events
    for e in events:
        at = _parse(e["at"])
        if e["type"] == ev.CLAIMED:
            if current is None:
                seconds["queued"] += _seconds(since, at)
            else:  # a takeover of an expired lease ends the previous attempt here
                _close(out, current, at, by_number, redo_until)
            current = {"number": e["attempt"], "start": at, "events": []}
        elif current is not None and e["attempt"] == current["number"]:
            current["events"].append(e)
            if e["type"] in _ENDS:
                _close(out, current, at, by_number, redo_until)
                current, since = None, at
    if current is not None:  # still running
        _close(out, current, end, by_number, redo_until)
    else:
        seconds["queued"] += _seconds(since, end)
    out["steps_redone"] = sum(a["steps_redone"] for a in attempts)
    return _finish(out)


def _close(out: dict, attempt: dict, end: datetime, by_number: dict, redo_until: dict) -> None:
    """Add one attempt's parts, from its claim to ``end``."""
    n, start, evs = attempt["number"], attempt["start"], attempt["events"]
    row = by_number.get(n, {})
    active_end = end
    if row.get("state") == "lost" and row.get("heartbeat_at"):
        active_end = max(start, min(end, _parse(row["heartbeat_at"])))
    parts = dict.fromkeys(PARTS, 0.0)
    parts["lost"] = _seconds(active_end, end)
    first = next((_parse(e["at"]) for e in evs if e["type"] == ev.FIRST_BATCH), None)
    if first is None or first > active_end:
        parts["starting"] = _seconds(start, active_end)
    else:
        parts["starting"] = _seconds(start, first)
        running = _seconds(first, active_end)
        sums = {
            "validation": sum(
                e["data"].get("seconds", 0) for e in evs if e["type"] == ev.VALIDATED
            ),
            "checkpoint_blocked": sum(
                e["data"].get("blocked_seconds", 0) for e in evs if e["type"] == ev.CHECKPOINT
            ),
        }
        redo = 0.0
        if row.get("steps_redone"):
            until = redo_until.get(n)
            if until is not None:
                redo = min(running, max(0.0, until - first.timestamp()))
            else:  # no row to time it by: the attempt's pace over the steps it trained
                trained = max(1, row.get("last_step", 0) - row.get("resumed_from_step", 0))
                redo = running * min(1.0, row["steps_redone"] / trained)
        sums["redoing"] = redo
        busy = sum(sums.values())
        scale = running / busy if busy > running else 1.0  # overlapping clocks: never more
        for part, value in sums.items():
            parts[part] = value * scale
        parts["training"] = max(0.0, running - busy * scale)
    for part, value in parts.items():
        out["seconds"][part] += value
    out["attempts"].append(
        {
            "number": n,
            "seconds": {p: round(v, 3) for p, v in parts.items()},
            "steps_redone": row.get("steps_redone", 0),
        }
    )


def _finish(out: dict) -> dict:
    out["seconds"] = {p: round(v, 3) for p, v in out["seconds"].items()}
    out["wall_seconds"] = round(out["wall_seconds"], 3)
    wall = out["wall_seconds"]
    out["goodput"] = round(out["seconds"]["training"] / wall, 4) if wall > 0 else None
    return out


def _seconds(a: datetime, b: datetime) -> float:
    return max(0.0, (b - a).total_seconds())


def _parse(value) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)
