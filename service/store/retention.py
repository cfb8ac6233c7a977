"""Retention: keeps the database and the bucket from growing without bound.

Two passes, each safe to repeat and to run beside live workers:

- **Metric compaction.** A job's batch-level metric rows older than an age are thinned to
  at most N rows: the first row of each of N - 1 evenly spaced step buckets, and the last
  old row (not the per-bucket extremes a ``max_points`` poll shows). Epoch rows and rows
  newer than the age are kept. In the same transaction the series' rollups are rebuilt
  and its version bumped, so every later poll (cursor, ``max_points``, ETag) answers what
  a fresh computation over the remaining rows answers.
- **Checkpoint pruning.** A job that has ended keeps its final model and its best
  checkpoint (by the spec's ``checkpoint.keep_best``); a job without a final model
  (failed, cancelled) keeps its latest checkpoint too. The rows go first, in one
  transaction with the job's pointer; the objects are deleted from the store after.

Run by ``fitfleet retention`` (a cron job) or by the reaper every
``FITFLEET_RETENTION_INTERVAL`` seconds.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import asdict, dataclass

from sqlalchemy import and_, case, delete, func, or_, select, update

from service.core.config import Settings
from service.store import rollups
from service.store.db import session_scope
from service.store.jobs import ENDED
from service.store.metrics import bump_version
from service.store.tables import Checkpoint, Job, Metric

log = logging.getLogger("fitfleet.retention")


@dataclass
class Report:
    """What a retention pass did (or, with ``dry_run``, would do)."""

    jobs_compacted: int = 0
    metric_rows_deleted: int = 0
    jobs_pruned: int = 0
    checkpoints_deleted: int = 0
    objects_deleted: int = 0
    dry_run: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


def kept_steps(steps: list[int], max_points: int) -> set[int]:
    """The steps a compaction keeps: the first of each of ``max_points - 1`` buckets, the last."""
    if len(steps) <= max_points:
        return set(steps)
    lo, hi = min(steps), max(steps)
    keep = {hi}
    if max_points > 1:
        width = math.ceil((hi - lo + 1) / (max_points - 1))
        first: dict[int, int] = {}
        for step in steps:
            bucket = (step - lo) // width
            first[bucket] = min(step, first.get(bucket, step))
        keep.update(first.values())
    return keep


def compact_metrics(
    database_url: str,
    older_than_seconds: float,
    max_points: int,
    dry_run: bool = False,
    now: float | None = None,
) -> tuple[int, int]:
    """Thin each job's batch rows older than the age to ``max_points`` and rebuild what
    polls read from them (rollups, version); returns (jobs, rows deleted)."""
    if max_points < 1:
        raise ValueError("max_points must be at least 1")
    cutoff = (time.time() if now is None else now) - older_than_seconds
    old = (Metric.kind == "batch", Metric.wall_time < cutoff)
    with session_scope(database_url) as s:
        jobs = s.scalars(
            select(Metric.job_id)
            .where(*old)
            .group_by(Metric.job_id)
            .having(func.count() > max_points)
        ).all()
    deleted = 0
    for job_id in jobs:
        with session_scope(database_url) as s:
            steps = s.scalars(select(Metric.step).where(Metric.job_id == job_id, *old)).all()
            keep = kept_steps(list(steps), max_points)
            drop = len(steps) - len(keep)
            if not dry_run and drop > 0:
                bump_version(s, job_id, "batch")
                s.execute(
                    delete(Metric).where(Metric.job_id == job_id, *old, Metric.step.not_in(keep))
                )
                rollups.rebuild(s, job_id, "batch")
            deleted += drop
        log.info(
            "job %s: %s %d old batch metric rows, %d kept",
            job_id,
            "would delete" if dry_run else "deleted",
            drop,
            len(keep),
        )
    return len(jobs), deleted


def _best_step(rows: list[Checkpoint], keep_best: dict | None) -> int | None:
    if not keep_best or not keep_best.get("monitor"):
        return None
    monitor, mode = keep_best["monitor"], keep_best.get("mode", "min")
    scored = [
        (r.logs[monitor], r.step)
        for r in rows  # a NaN or inf score is never the best
        if isinstance(r.logs, dict)
        and isinstance(r.logs.get(monitor), (int, float))
        and math.isfinite(r.logs[monitor])
    ]
    if not scored:
        return None
    return (min(scored) if mode == "min" else max(scored, key=lambda p: (p[0], -p[1])))[1]


def _prune_job(database_url: str, job_id: str, dry_run: bool) -> list[str]:
    """Delete the rows of a finished job's surplus checkpoints; returns their URIs."""
    with session_scope(database_url) as s:
        job = s.get(Job, job_id)
        if job is None or job.state not in ENDED:
            return []
        rows = s.scalars(
            select(Checkpoint).where(Checkpoint.job_id == job_id).order_by(Checkpoint.step)
        ).all()
        live = [r for r in rows if not r.deleted]
        keep = {_best_step(live, (job.spec.get("checkpoint") or {}).get("keep_best"))}
        if job.model_uri is None and live:
            keep.add(live[-1].step)  # no final model: the latest checkpoint stands for it
        drop = [r for r in rows if r.step not in keep]
        if dry_run or not drop:
            return [r.uri for r in drop if not r.deleted]
        kept = [r for r in live if r.step in keep]
        s.execute(
            update(Job)
            .where(Job.id == job_id, Job.state.in_(ENDED))
            .values(latest_checkpoint_id=kept[-1].id if kept else None)
        )
        s.execute(delete(Checkpoint).where(Checkpoint.id.in_([r.id for r in drop])))
        return [r.uri for r in drop if not r.deleted]


def _surplus():
    """Ended jobs that may hold more checkpoints than they keep (a pruned job is skipped)."""
    deleted = func.sum(case((Checkpoint.deleted.is_(True), 1), else_=0))
    return (
        select(Checkpoint.job_id)
        .join(Job, Job.id == Checkpoint.job_id)
        .where(Job.state.in_(ENDED))
        .group_by(Checkpoint.job_id, Job.model_uri)
        .having(
            or_(func.count() > 2, deleted > 0, and_(func.count() == 2, Job.model_uri.is_not(None)))
        )
    )


def prune_checkpoints(database_url: str, dry_run: bool = False) -> tuple[int, int, int]:
    """Prune every ended job's checkpoints; returns (jobs, checkpoints, objects deleted)."""
    from service.storage import open_store

    with session_scope(database_url) as s:
        jobs = s.scalars(_surplus()).all()
    pruned = checkpoints = objects = 0
    for job_id in jobs:
        uris = _prune_job(database_url, job_id, dry_run)
        pruned += bool(uris)
        checkpoints += len(uris)
        for uri in [] if dry_run else uris:
            try:  # each checkpoint is a prefix; its own URL opens a store rooted there
                objects += open_store(uri).delete_prefix("")
            except Exception:
                log.warning(
                    "job %s: could not delete checkpoint objects at %s", job_id, uri, exc_info=True
                )
        if uris:
            log.info(
                "job %s: %s %d checkpoints",
                job_id,
                "would prune" if dry_run else "pruned",
                len(uris),
            )
    return pruned, checkpoints, objects


def run(
    settings: Settings,
    *,
    metrics_age_hours: float | None = None,
    max_points: int | None = None,
    dry_run: bool = False,
) -> Report:
    """One retention pass with the settings' age and size (or the ones given)."""
    hours = settings.metrics_retention_hours if metrics_age_hours is None else metrics_age_hours
    points = settings.metrics_retention_points if max_points is None else max_points
    report = Report(dry_run=dry_run)
    report.jobs_compacted, report.metric_rows_deleted = compact_metrics(
        settings.database_url, hours * 3600.0, points, dry_run
    )
    report.jobs_pruned, report.checkpoints_deleted, report.objects_deleted = prune_checkpoints(
        settings.database_url, dry_run
    )
    return report


class Schedule:
    """Starts a retention pass every ``settings.retention_interval`` seconds (0: never).

    A pass runs in a thread of its own, so a long one never delays the reaper's sweeps;
    a pass still running when the next is due is not doubled.

    Example (the reaper's loop):
        schedule = Schedule(settings)
        while not stop.is_set():
            sweep(settings)
            schedule.tick()
    """

    def __init__(self, settings: Settings, clock=time.monotonic):
        self.settings, self.clock = settings, clock
        self.due = clock() + settings.retention_interval
        self.thread: threading.Thread | None = None
        self.last: Report | None = None

    def tick(self) -> bool:
        """Start a pass if one is due and none is running; True if one started."""
        interval = self.settings.retention_interval
        if interval <= 0 or self.clock() < self.due:
            return False
        if self.thread is not None and self.thread.is_alive():
            return False
        self.due = self.clock() + interval
        self.thread = threading.Thread(target=self._pass, name="retention", daemon=True)
        self.thread.start()
        return True

    def _pass(self) -> None:
        try:
            self.last = run(self.settings)
            log.info("retention pass: %s", self.last.as_dict())
        except Exception:
            log.exception(
                "retention pass failed; next one in %.0fs", self.settings.retention_interval
            )
