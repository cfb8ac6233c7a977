"""Metric rows: bulk upserts keyed by (job, kind, step), and cursor reads for pollers."""

from __future__ import annotations

import math
import re

from sqlalchemy import func, select

from service.core.errors import BadRequest, NotFound
from service.store import nonfinite, rollups
from service.store.db import get_engine, read_scope, session_scope
from service.store.tables import Job, Metric, MetricSeries, utcnow

KINDS = ("batch", "epoch", "system")  # system: CPU, memory and GPUs of the training process
METRIC_NAME = re.compile(r"^[A-Za-z0-9_.\-/]{1,100}$")


class MetricStore:
    """Writes from workers (idempotent) and reads for dashboards."""

    def __init__(self, database_url: str):
        self.url = database_url

    def write(self, job_id: str, rows: list[dict]) -> int:
        """Upsert rows ``{kind, step, epoch, batch, attempt, logs, wall_time}`` in one go.

        A replayed step (an attempt resumed from a checkpoint) overwrites its row, so each
        step has exactly one row whatever happened to the workers. NaN and +/-inf are
        stored as the strings of :mod:`service.store.nonfinite`, on every database.
        """
        if not rows:
            return 0
        insert = rollups.insert_for(get_engine(self.url).dialect.name)
        # Keep the last value of each key within one batch of rows.
        unique = {(r["kind"], r["step"]): r for r in rows}
        values = [
            {"job_id": job_id, **r, "logs": nonfinite.encode_logs(r.get("logs"))}
            for r in unique.values()
        ]
        with session_scope(self.url) as s:
            kinds = sorted({v["kind"] for v in values})
            for kind in kinds:  # the series row's lock orders concurrent writers of a job
                _bump(s, insert, job_id, kind)
            stmt = insert(Metric)
            stmt = stmt.on_conflict_do_update(  # one cached statement, sent executemany-style
                index_elements=[Metric.job_id, Metric.kind, Metric.step],
                set_={
                    c: getattr(stmt.excluded, c)
                    for c in ("epoch", "batch", "attempt", "logs", "wall_time")
                },
            )
            s.execute(stmt, values)
            for kind in kinds:
                steps = [v["step"] for v in values if v["kind"] == kind]
                rollups.refresh(s, job_id, kind, min(steps), max(steps))
        return len(values)

    def reject(self, job_id: str, rows: list[dict], reason: str) -> None:
        """Count rows that could not be stored on their series, with a reason the job shows."""
        insert = rollups.insert_for(get_engine(self.url).dialect.name)
        counts: dict[str, int] = {}
        for r in rows:
            counts[r["kind"]] = counts.get(r["kind"], 0) + 1
        with session_scope(self.url) as s:
            for kind, n in sorted(counts.items()):
                stmt = insert(MetricSeries).values(
                    job_id=job_id,
                    kind=kind,
                    version=0,
                    updated_at=utcnow(),
                    rows_rejected=n,
                    rejected_reason=reason[:500],
                )
                s.execute(
                    stmt.on_conflict_do_update(
                        index_elements=[MetricSeries.job_id, MetricSeries.kind],
                        set_={
                            "rows_rejected": MetricSeries.rows_rejected + n,
                            "rejected_reason": stmt.excluded.rejected_reason,
                            "updated_at": stmt.excluded.updated_at,
                        },
                    )
                )

    def version(self, job_id: str, kind: str, project: str | None = None) -> int:
        """How many writes the series has had (0 before the first), in one query.

        NotFound if there is no such job or it belongs to another ``project`` (None sees
        every project).
        """
        with read_scope(self.url) as s:  # every poll: one round trip
            row = s.execute(
                select(Job.project, MetricSeries.version)
                .outerjoin(
                    MetricSeries, (MetricSeries.job_id == Job.id) & (MetricSeries.kind == kind)
                )
                .where(Job.id == job_id)
            ).first()
        if row is None or (project is not None and row[0] != project):
            raise NotFound(f"no job with id {job_id!r}")
        return row[1] or 0

    def rebuild(self, job_id: str, kind: str) -> None:
        """Recompute a series' rollups and bump its version (rows written by other means)."""
        with session_scope(self.url) as s:
            bump_version(s, job_id, kind)
            rollups.rebuild(s, job_id, kind)

    def read(
        self,
        job_id: str,
        kind: str,
        after: int | None = None,
        max_points: int | None = None,
        limit: int = 10_000,
        metric: str = "loss",
        project: str | None = None,
    ) -> dict:
        """Rows with step > ``after`` ascending; at most ``max_points`` of them if asked.

        Downsampling keeps the last row and, in each bucket of steps, the rows with the
        minimum and the maximum of ``metric``, so a spike stays visible. NotFound if the
        job belongs to another ``project`` (None sees every project).
        """
        if kind not in KINDS:
            raise BadRequest(f"kind must be one of {', '.join(KINDS)}", details={"kind": kind})
        if not METRIC_NAME.match(metric or ""):
            raise BadRequest(
                "metric must be a metric name (letters, digits, _ . - /)",
                details={"parameter": "metric"},
            )
        after = -1 if after is None else after
        with session_scope(self.url) as s:
            if (
                project is not None
                and s.scalar(select(Job.project).where(Job.id == job_id)) != project
            ):
                raise NotFound(f"no job with id {job_id!r}")
            base = (Metric.job_id == job_id, Metric.kind == kind, Metric.step > after)
            many = False
            if max_points:  # more than max_points rows? (the primary key answers, no logs)
                head = s.scalars(
                    select(Metric.step).where(*base).order_by(Metric.step).limit(max_points + 1)
                ).all()
                many = len(head) > max_points
            buckets = None
            if many:
                rows, buckets = _downsampled(s, job_id, kind, head[0], max_points, metric)
            else:
                rows = s.scalars(
                    select(Metric).where(*base).order_by(Metric.step).limit(max_points or limit)
                ).all()
            out = [_row(m) for m in rows]
        body = {"kind": kind, "rows": out, "next": out[-1]["step"] if out else after}
        if max_points:
            body.update(downsampled=many, metric=metric)
        if buckets:  # so a chart can draw each bucket's min-max band
            body.update(buckets=buckets)
        return body

    def count(self, job_id: str, kind: str) -> int:
        with session_scope(self.url) as s:
            return s.scalar(
                select(func.count())
                .select_from(Metric)
                .where(Metric.job_id == job_id, Metric.kind == kind)
            )


def bump_version(s, job_id: str, kind: str) -> None:
    """In session ``s``: bump a series' version (pollers' ETags change), taking its lock.

    For rows changed by other means than :meth:`MetricStore.write` (compaction); call it
    before changing them, so the series lock is taken in the order writers take it.
    """
    _bump(s, rollups.insert_for(s.get_bind().dialect.name), job_id, kind)


def _bump(s, insert, job_id: str, kind: str) -> None:
    stmt = insert(MetricSeries).values(job_id=job_id, kind=kind, version=1, updated_at=utcnow())
    s.execute(
        stmt.on_conflict_do_update(
            index_elements=[MetricSeries.job_id, MetricSeries.kind],
            set_={"version": MetricSeries.version + 1, "updated_at": stmt.excluded.updated_at},
        )
    )


def _downsampled(
    s, job_id: str, kind: str, first: int, max_points: int, metric: str
) -> tuple[list[Metric], list[list[int]]]:
    """The last row and each bucket's extremes of ``metric``: at most ``max_points`` rows,
    and per bucket, in step order, ``[step of its minimum, step of its maximum]``."""
    where = (Metric.job_id == job_id, Metric.kind == kind)
    last = s.scalar(select(func.max(Metric.step)).where(*where))
    steps = {last}
    buckets, pairs = (max_points - 1) // 2, {}
    if buckets:
        width = math.ceil((last - first + 1) / buckets)
        pairs = rollups.bucket_extremes(s, job_id, kind, first, last, width, metric)
        steps |= {step for pair in pairs.values() for step in pair}
    steps, size = sorted(steps), rollups.batch_size(s.get_bind().dialect.name, 1) - 10
    rows = []
    for i in range(0, len(steps), size):
        rows += s.scalars(
            select(Metric).where(*where, Metric.step.in_(steps[i : i + size])).order_by(Metric.step)
        ).all()
    return rows, [list(pair) for pair in pairs.values()]


def _row(m: Metric) -> dict:
    return {
        "step": m.step,
        "epoch": m.epoch,
        "batch": m.batch,
        "attempt": m.attempt,
        "logs": nonfinite.encode_logs(m.logs),
        "wall_time": m.wall_time,
    }
