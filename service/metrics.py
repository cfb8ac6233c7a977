"""Metric rows: bulk upserts keyed by (job, kind, step), and cursor reads for pollers."""

from __future__ import annotations

import math

from sqlalchemy import func, select

from service.db import get_engine, session_scope
from service.errors import BadRequest
from service.models import Metric

KINDS = ("batch", "epoch")


def _insert_for(dialect: str):
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - other backends are not supported
        raise NotImplementedError(dialect)
    return insert


class MetricStore:
    """Writes from workers (idempotent) and reads for dashboards."""

    def __init__(self, database_url: str):
        self.url = database_url

    def write(self, job_id: str, rows: list[dict]) -> int:
        """Upsert rows ``{kind, step, epoch, batch, attempt, logs, wall_time}`` in one go.

        A replayed step (an attempt resumed from a checkpoint) overwrites its row, so each
        step has exactly one row whatever happened to the workers.
        """
        if not rows:
            return 0
        insert = _insert_for(get_engine(self.url).dialect.name)
        # Keep the last value of each key within one batch of rows.
        unique = {(r["kind"], r["step"]): r for r in rows}
        values = [{"job_id": job_id, **r} for r in unique.values()]
        stmt = insert(Metric).values(values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[Metric.job_id, Metric.kind, Metric.step],
            set_={
                "epoch": stmt.excluded.epoch,
                "batch": stmt.excluded.batch,
                "attempt": stmt.excluded.attempt,
                "logs": stmt.excluded.logs,
                "wall_time": stmt.excluded.wall_time,
            },
        )
        with session_scope(self.url) as s:
            s.execute(stmt)
        return len(values)

    def read(self, job_id: str, kind: str, after: int | None = None,
             max_points: int | None = None, limit: int = 10_000) -> dict:
        """Rows with step > ``after`` ascending; downsampled to ``max_points`` if asked."""
        if kind not in KINDS:
            raise BadRequest(f"kind must be one of {', '.join(KINDS)}", details={"kind": kind})
        after = -1 if after is None else after
        with session_scope(self.url) as s:
            base = (Metric.job_id == job_id, Metric.kind == kind, Metric.step > after)
            if max_points:
                rows = _downsampled(s, base, max_points)
            else:
                rows = s.scalars(
                    select(Metric).where(*base).order_by(Metric.step).limit(limit)
                ).all()
            out = [_row(m) for m in rows]
        return {"kind": kind, "rows": out, "next": out[-1]["step"] if out else after}

    def count(self, job_id: str, kind: str) -> int:
        with session_scope(self.url) as s:
            return s.scalar(
                select(func.count()).select_from(Metric)
                .where(Metric.job_id == job_id, Metric.kind == kind)
            )


def _downsampled(s, base, max_points: int) -> list[Metric]:
    """At most ``max_points`` rows: the first of evenly spaced buckets, plus the last row."""
    lo, hi, n = s.execute(
        select(func.min(Metric.step), func.max(Metric.step), func.count()).where(*base)
    ).one()
    if not n:
        return []
    if n <= max_points:
        return s.scalars(select(Metric).where(*base).order_by(Metric.step)).all()
    steps = {hi}
    if max_points > 1:
        # Steps lie in [lo, hi]: integer buckets of this width number at most max_points - 1.
        width = math.ceil((hi - lo + 1) / (max_points - 1))
        bucket = (Metric.step - lo) // width
        steps.update(s.scalars(select(func.min(Metric.step)).where(*base).group_by(bucket)))
    return s.scalars(
        select(Metric).where(*base, Metric.step.in_(steps)).order_by(Metric.step)
    ).all()


def _row(m: Metric) -> dict:
    return {"step": m.step, "epoch": m.epoch, "batch": m.batch, "attempt": m.attempt,
            "logs": m.logs, "wall_time": m.wall_time}
