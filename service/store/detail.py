"""A job as a dashboard shows it: progress with throughput and ETA, attempts, checkpoints.

Throughput is measured on the newest batch rows of the current attempt (their
``wall_time``), so a resume or a pause between attempts does not distort it. The attempts
timeline says where each attempt started, where it stopped and how many steps it redid.
"""

from __future__ import annotations

from sqlalchemy import select

from service.core.errors import NotFound
from service.store.db import session_scope
from service.store.goodput import job_goodput
from service.store.jobs import JobStore
from service.store.tables import Metric
from service.store.views import served_checkpoint

RECENT = 50  # batch rows the throughput is measured on


def job_detail(jobs: JobStore, job_id: str, project: str | None = None) -> dict:
    """The job, its progress with ``steps_per_second`` and ``eta_seconds``, its attempts
    with ``steps_redone``, checkpoints, summary, the steps where an attempt resumed, and
    its goodput (where its wall time went, :mod:`service.store.goodput`)."""
    job = jobs.get(job_id)
    if project is not None and job.get("project") != project:
        raise NotFound(f"no job with id {job_id!r}")
    attempts = timeline(jobs.attempts(job_id))
    progress = dict(job["progress"])
    rate = None
    if job["state"] == "running" and job["attempts"]:
        rate = steps_per_second(jobs.url, job_id, job["attempts"])
    progress["steps_per_second"] = rate
    progress["eta_seconds"] = eta(progress, rate)
    return {
        "job": job,
        "progress": progress,
        "attempts": attempts,
        "resume_steps": [a["resumed_from_step"] for a in attempts if a["resumed_from_step"]],
        "checkpoints": [served_checkpoint(c) for c in jobs.checkpoints(job_id)],
        "summary": jobs.summary(job_id),
        "goodput": job_goodput(jobs.url, job_id),
    }


def timeline(attempts: list[dict]) -> list[dict]:
    """Attempts oldest first, each with ``steps_redone``: the steps its predecessor had done
    past the checkpoint this one resumed from (``previous.last_step - resumed_from_step``)."""
    out, previous = [], None
    for a in sorted(attempts, key=lambda a: a["number"]):
        redone = 0
        if previous is not None:
            redone = max(0, previous["last_step"] - a["resumed_from_step"])
        out.append({**a, "steps_redone": redone})
        previous = a
    return out


def steps_per_second(url: str, job_id: str, attempt: int) -> float | None:
    """Steps per second over the newest batch rows the given attempt wrote, or None."""
    with session_scope(url) as s:
        rows = s.execute(
            select(Metric.step, Metric.wall_time, Metric.attempt)
            .where(Metric.job_id == job_id, Metric.kind == "batch")
            .order_by(Metric.step.desc())
            .limit(RECENT)
        ).all()
    rows = [r for r in rows if r.attempt == attempt]
    if len(rows) < 2:
        return None
    newest, oldest = rows[0], rows[-1]
    seconds = newest.wall_time - oldest.wall_time
    if seconds <= 0:
        return None
    return round((newest.step - oldest.step) / seconds, 3)


def eta(progress: dict, rate: float | None) -> float | None:
    """Seconds left at ``rate`` steps per second, when the total is known."""
    total = progress.get("total_steps")
    if not rate or not total:
        return None
    return round(max(0, total - progress["step"]) / rate, 1)
