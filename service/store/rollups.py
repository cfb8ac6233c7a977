"""Metric rollups: per-block extremes of every metric, kept so downsampling reads few rows.

Blocks are aligned runs of steps at three sizes (32, 1024 and 32768 steps). A write
refreshes the blocks it touched, level by level (level 0 from metric rows, each level
above from the 32 blocks below it), so the work per write stays small. A downsampled read
covers its step range with the largest blocks that fit its bucket width and reads metric
rows only at the ragged edges. Extremes follow :func:`service.store.nonfinite.order_key`
(-inf < numbers < inf < NaN), so a bucket where training diverged keeps its NaN or inf.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from sqlalchemy import case, delete, func, select

from service.store import nonfinite
from service.store.tables import Metric, MetricRollup

SIZES = (32, 1024, 32768)  # steps per block at level 0, 1, 2
MAX_PARAMETERS = {"sqlite": 999, "postgresql": 32767}  # bound values in one statement, safely


def batch_size(dialect: str, columns: int) -> int:
    """How many rows of ``columns`` values one statement may carry on ``dialect``."""
    return max(1, MAX_PARAMETERS.get(dialect, 999) // columns)


def insert_for(dialect: str):
    """The dialect's INSERT that supports ``on_conflict_do_update``."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - other backends are not supported
        raise NotImplementedError(dialect)
    return insert


def block_stats(points: Iterable[tuple[int, dict]]) -> dict:
    """``{first_step, last_step, rows, stats}`` of metric rows given as ``(step, logs)``."""
    first = last = None
    rows = 0
    stats: dict[str, list] = {}
    for step, logs in points:
        rows += 1
        first = step if first is None else min(first, step)
        last = step if last is None else max(last, step)
        for name, value in (logs or {}).items():
            if nonfinite.number(value) is None:
                continue
            value = nonfinite.encode(float(value) if isinstance(value, int) else value)
            _fold(stats, name, [value, step, value, step])
    return {"first_step": first, "last_step": last, "rows": rows, "stats": stats}


def merge(blocks: Iterable[dict]) -> dict:
    """The stats of the union of blocks (as :func:`block_stats` returns them)."""
    first = last = None
    rows = 0
    stats: dict[str, list] = {}
    for b in blocks:
        rows += b["rows"]
        first = b["first_step"] if first is None else min(first, b["first_step"])
        last = b["last_step"] if last is None else max(last, b["last_step"])
        for name, item in b["stats"].items():
            _fold(stats, name, item)
    return {"first_step": first, "last_step": last, "rows": rows, "stats": stats}


def _fold(stats: dict, name: str, item: list) -> None:
    lo, lo_step, hi, hi_step = item
    have = stats.get(name)
    if have is None:
        stats[name] = list(item)
        return
    if (_key(lo), lo_step) < (_key(have[0]), have[1]):
        have[0], have[1] = lo, lo_step
    if _key(hi) > _key(have[2]) or (_key(hi) == _key(have[2]) and hi_step < have[3]):
        have[2], have[3] = hi, hi_step


def _key(value) -> tuple[int, float]:
    """The order of a stored value (a number or one of the non-finite strings)."""
    if value.__class__ is float and not math.isnan(value):  # the common case, quickly
        return (0, value)
    return nonfinite.order_key(nonfinite.number(value))


def refresh(s, job_id: str, kind: str, lo: int, hi: int) -> None:
    """Recompute every block that holds a step in ``[lo, hi]``, level by level."""
    where = (MetricRollup.job_id == job_id, MetricRollup.kind == kind)
    size = SIZES[0]
    start, end = lo // size * size, (hi // size + 1) * size - 1
    points = s.execute(
        select(Metric.step, Metric.logs).where(
            Metric.job_id == job_id, Metric.kind == kind, Metric.step.between(start, end)
        )
    ).all()
    groups: dict[int, list] = {}
    for step, logs in points:
        groups.setdefault(step // size * size, []).append((step, logs))
    _store(s, job_id, kind, 0, {k: block_stats(v) for k, v in groups.items()})
    for level in range(1, len(SIZES)):
        size, below = SIZES[level], SIZES[level - 1]
        start, end = lo // size * size, (hi // size + 1) * size - 1
        rows = s.execute(
            select(
                MetricRollup.start,
                MetricRollup.first_step,
                MetricRollup.last_step,
                MetricRollup.rows,
                MetricRollup.stats,
            ).where(
                *where,
                MetricRollup.level == level - 1,
                MetricRollup.start.between(start, end - below + 1),
            )
        ).all()
        groups = {}
        for r in rows:
            groups.setdefault(r.start // size * size, []).append(
                {
                    "first_step": r.first_step,
                    "last_step": r.last_step,
                    "rows": r.rows,
                    "stats": r.stats,
                }
            )
        _store(s, job_id, kind, level, {k: merge(v) for k, v in groups.items()})


def _store(s, job_id: str, kind: str, level: int, blocks: dict[int, dict]) -> None:
    if not blocks:
        return
    dialect = s.get_bind().dialect.name
    insert, size = insert_for(dialect), batch_size(dialect, 8)
    values = [
        {"job_id": job_id, "kind": kind, "level": level, "start": start, **b}
        for start, b in blocks.items()
    ]
    for i in range(0, len(values), size):
        stmt = insert(MetricRollup).values(values[i : i + size])
        s.execute(
            stmt.on_conflict_do_update(
                index_elements=[
                    MetricRollup.job_id,
                    MetricRollup.kind,
                    MetricRollup.level,
                    MetricRollup.start,
                ],
                set_={
                    c: getattr(stmt.excluded, c)
                    for c in ("first_step", "last_step", "rows", "stats")
                },
            )
        )


def rebuild(s, job_id: str, kind: str) -> None:
    """Drop and recompute every block of a series (rows written by other means)."""
    s.execute(delete(MetricRollup).where(MetricRollup.job_id == job_id, MetricRollup.kind == kind))
    top = SIZES[-1]
    chunks = s.scalars(
        select((Metric.step // top).label("chunk"))
        .where(Metric.job_id == job_id, Metric.kind == kind)
        .distinct()
    ).all()
    for chunk in sorted(chunks):
        refresh(s, job_id, kind, chunk * top, (chunk + 1) * top - 1)


def cover(a: int, b: int, level: int) -> list[tuple[int, int, int]]:
    """``(level, lo, hi)`` pieces covering ``[a, b]``: whole blocks of ``level`` or below
    where they fit, level ``-1`` (metric rows) for the rest."""
    if a > b:
        return []
    if level < 0:
        return [(-1, a, b)]
    size = SIZES[level]
    first, last = -(-a // size) * size, (b + 1) // size * size - 1
    if first > last:
        return cover(a, b, level - 1)
    return cover(a, first - 1, level - 1) + [(level, first, last)] + cover(last + 1, b, level - 1)


def extremes(s, job_id: str, kind: str, a: int, b: int, width: int, metric: str) -> set[int]:
    """Steps of the minimum and maximum of ``metric`` in each bucket of ``width`` steps
    from ``a`` to ``b`` (a block counts in the bucket where it starts)."""
    pairs = bucket_extremes(s, job_id, kind, a, b, width, metric)
    return {step for pair in pairs.values() for step in pair}


def bucket_extremes(
    s, job_id: str, kind: str, a: int, b: int, width: int, metric: str
) -> dict[int, tuple[int, int]]:
    """Per bucket (as :func:`extremes` counts them): the steps of its minimum and maximum."""
    level = max((i for i, size in enumerate(SIZES) if size <= width), default=-1)
    best: dict[int, list] = {}  # bucket -> [min, step, max, step]
    for lvl, lo, hi in cover(a, b, level):
        if lvl < 0:
            for step, value in _row_extremes(s, job_id, kind, lo, hi, a, width, metric):
                _candidate(best, (step - a) // width, value, step, value, step)
            continue
        rows = s.execute(
            select(MetricRollup.start, MetricRollup.first_step, MetricRollup.stats).where(
                MetricRollup.job_id == job_id,
                MetricRollup.kind == kind,
                MetricRollup.level == lvl,
                MetricRollup.start.between(lo, hi),
            )
        ).all()
        for start, first, stats in rows:
            item = stats.get(metric)
            bucket = (start - a) // width
            if item is None:
                _candidate(best, bucket, None, first, None, first)
            else:
                _candidate(best, bucket, *item)
    return {bucket: (v[1], v[3]) for bucket, v in sorted(best.items())}


def _candidate(best: dict, bucket: int, lo, lo_step: int, hi, hi_step: int) -> None:
    """Keep the bucket's extremes as sort keys (the smallest, and the largest with the
    earliest step on ties); a missing value (None) yields to any value."""
    klo = None if lo is None else (_key(lo), lo_step)
    khi = None if hi is None else (_key(hi), -hi_step)
    have = best.get(bucket)
    if have is None:
        best[bucket] = [klo, lo_step, khi, hi_step]
        return
    if have[0] is None or (klo is not None and klo < have[0]):
        have[0], have[1] = klo, lo_step
    if have[2] is None or (khi is not None and khi > have[2]):
        have[2], have[3] = khi, hi_step


def _row_extremes(
    s, job_id: str, kind: str, lo: int, hi: int, a: int, width: int, metric: str
) -> list[tuple[int, float | None]]:
    """Per bucket, the rows holding the min and max of ``metric``, chosen in SQL."""
    value, text = Metric.logs[metric].as_float(), Metric.logs[metric].as_string()
    rank = case((text == "-Infinity", 0), (text == "Infinity", 2), (text == "NaN", 3), else_=1)
    bucket = (Metric.step - a) // width
    missing = value.is_(None)
    inner = (
        select(
            Metric.step.label("step"),
            value.label("value"),
            rank.label("rank"),
            func.row_number()
            .over(partition_by=bucket, order_by=(missing, rank.asc(), value.asc(), Metric.step))
            .label("rmin"),
            func.row_number()
            .over(partition_by=bucket, order_by=(missing, rank.desc(), value.desc(), Metric.step))
            .label("rmax"),
        )
        .where(Metric.job_id == job_id, Metric.kind == kind, Metric.step.between(lo, hi))
        .subquery()
    )
    special = {0: -math.inf, 2: math.inf, 3: math.nan}
    return [
        (step, special.get(r, v) if v is not None else None)
        for step, v, r in s.execute(
            select(inner.c.step, inner.c.value, inner.c.rank).where(
                (inner.c.rmin == 1) | (inner.c.rmax == 1)
            )
        ).all()
    ]
