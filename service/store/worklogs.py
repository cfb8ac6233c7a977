"""Worker log lines: what a worker logged (warnings and worse) while an attempt held a job.

The worker writes them in batches (:func:`write`); the API reads them per job, optionally
of one attempt, with an ``after`` cursor (the last id seen), as it reads metrics.
"""

from __future__ import annotations

from sqlalchemy import insert, select

from service.store import events
from service.store.db import session_scope
from service.store.tables import WorkerLog
from service.store.views import iso


def write(url: str, job_id: str, attempt: int, rows: list[dict]) -> int:
    """Insert ``rows`` ``{at, level, logger, message}`` of one attempt in one transaction."""
    if not rows:
        return 0
    with session_scope(url) as s:
        s.execute(insert(WorkerLog), [{"job_id": job_id, "attempt": attempt, **r} for r in rows])
    return len(rows)


def read(
    url: str,
    job_id: str,
    attempt: int | None = None,
    after: int | None = None,
    limit: int = 1000,
    project: str | None = None,
) -> dict:
    """Lines with id > ``after`` (of ``attempt`` if given), oldest first:
    ``{"lines": [...], "next": cursor}``. NotFound for another ``project``'s job."""
    after = events.cursor(after, "a line id", job_id)
    with session_scope(url) as s:
        events.owned(s, job_id, project)
        q = select(WorkerLog).where(WorkerLog.job_id == job_id, WorkerLog.id > after)
        if attempt is not None:
            q = q.where(WorkerLog.attempt == attempt)
        rows = s.scalars(q.order_by(WorkerLog.id).limit(limit)).all()
        out = [
            {
                "id": r.id,
                "attempt": r.attempt,
                "at": iso(r.at),
                "level": r.level,
                "logger": r.logger,
                "message": r.message,
            }
            for r in rows
        ]
    return {"lines": out, "next": out[-1]["id"] if out else after}
