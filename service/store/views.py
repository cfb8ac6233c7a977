"""Plain-dict views of job, attempt and checkpoint rows (ORM rows never leave the store)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from service.store import nonfinite
from service.store.tables import Attempt, Checkpoint, Job, MetricSeries


def job_views(s, jobs: list[Job]) -> list[dict]:
    """Views of many jobs in a fixed number of queries whatever their number (checkpoints,
    metric series, and for queued jobs the few that say why they wait)."""
    ids = [j.latest_checkpoint_id for j in jobs if j.latest_checkpoint_id]
    latest = (
        {c.id: c for c in s.scalars(select(Checkpoint).where(Checkpoint.id.in_(ids)))}
        if ids
        else {}
    )
    rejected = _rejected(s, [j.id for j in jobs])
    waits = _waits(s, jobs)
    return [
        {
            **_view(j, latest.get(j.latest_checkpoint_id), rejected.get(j.id)),
            "waiting": waits.get(j.id),
            "preemptions": j.preemptions or 0,
            "preempt_requested": bool(j.preempt_requested),
        }
        for j in jobs
    ]


def _waits(s, jobs: list[Job]) -> dict[str, str]:
    """Why each queued job waits, in words (``service.store.scheduler``)."""
    if not any(j.state == "queued" for j in jobs):
        return {}
    from service.core.config import get_settings
    from service.store.scheduler import wait_reasons

    settings = get_settings()
    return wait_reasons(s, jobs, max(settings.lease_seconds, 3 * settings.heartbeat_seconds))


def job_view(s, job: Job) -> dict:
    """The job as the API answers it (``s`` is the session, to read its latest checkpoint)."""
    return job_views(s, [job])[0]


def _rejected(s, job_ids: list[str]) -> dict[str, dict]:
    """Per job, the metric rows its writers set aside and the latest reason."""
    rows = (
        s.execute(
            select(MetricSeries.job_id, MetricSeries.rows_rejected, MetricSeries.rejected_reason)
            .where(MetricSeries.job_id.in_(job_ids), MetricSeries.rows_rejected > 0)
            .order_by(MetricSeries.updated_at)
        ).all()
        if job_ids
        else []
    )
    out: dict[str, dict] = {}
    for job_id, n, reason in rows:
        have = out.setdefault(job_id, {"rows_rejected": 0, "rejected_reason": None})
        have["rows_rejected"] += n
        have["rejected_reason"] = reason
    return out


def _view(job: Job, latest: Checkpoint | None, rejected: dict | None) -> dict:
    spe = job.steps_per_epoch
    total = spe * job.epochs if spe else None
    return {
        "id": job.id,
        "name": job.name,
        "project": job.project,
        "state": job.state,
        "queue": job.queue,
        "priority": job.priority,
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "worker": job.worker,
        "cancel_requested": job.cancel_requested,
        "progress": {
            "epoch": job.epoch,
            "epochs": job.epochs,
            "batch": job.batch,
            "steps_per_epoch": spe,
            "step": job.step,
            "total_steps": total,
            "percent": round(100.0 * job.step / total, 2) if total else 0.0,
        },
        "latest_checkpoint": served_checkpoint(checkpoint_view(latest)) if latest else None,
        "model_available": job.model_uri is not None,
        "metrics": rejected or {"rows_rejected": 0, "rejected_reason": None},
        "error": {"code": job.error_code, "message": job.error_message} if job.error_code else None,
        "stopped": (job.summary or {}).get("stopped"),
        "spec": job.spec,
    }


def served_checkpoint(view: dict) -> dict:
    """A checkpoint view as the API answers it: logs JSON-safe (NaN and inf as strings)."""
    return {**view, "logs": nonfinite.encode_logs(view["logs"])}


def iso(t: datetime | None) -> str | None:
    return t.isoformat() if t else None


def attempt_view(a: Attempt) -> dict:
    return {
        "id": a.id,
        "number": a.number,
        "worker": a.worker,
        "state": a.state,
        "started_at": iso(a.started_at),
        "ended_at": iso(a.ended_at),
        "heartbeat_at": iso(a.heartbeat_at),
        "resumed_from_step": a.resumed_from_step,
        "last_step": a.last_step,
        "error": {"code": a.error_code, "message": a.error_message} if a.error_code else None,
    }


def checkpoint_view(c: Checkpoint) -> dict:
    return {
        "step": c.step,
        "epoch": c.epoch,
        "batch": c.batch,
        "uri": c.uri,
        "bytes": c.bytes,
        "sha256": c.sha256,
        "files": c.files,
        "created_at": iso(c.created_at),
        "logs": c.logs,
        "attempt_id": c.attempt_id,
    }
