"""Job state transitions: each one is a single guarded UPDATE in one transaction.

States: ``queued -> running -> succeeded | failed | cancelled`` and ``running -> queued``
when an attempt is lost or preempted. Writes a worker makes on a job's behalf are fenced
by its attempt id: they take effect only while that attempt is the job's current one.
ORM rows never leave this module; callers get plain dicts.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import and_, case, func, or_, select, update

from service.core.errors import Conflict, LeaseLost, NotFound
from service.store import lost
from service.store.db import session_scope
from service.store.tables import ENDED, Attempt, Checkpoint, Job, utcnow
from service.store.views import attempt_view, checkpoint_view, job_view


@dataclass(frozen=True)
class Claim:
    """What a worker holds after it claimed a job: its fencing token and where to start."""

    job_id: str
    attempt_id: int
    number: int
    spec: dict
    checkpoints: list[dict]
    project: str = "default"


class JobStore:
    """The jobs, attempts and checkpoints tables, as seen by the API, workers and reaper."""

    def __init__(self, database_url: str):
        self.url = database_url

    # -- the API side ---------------------------------------------------------------

    def create(self, spec: dict, *, epochs: int, summary: dict | None, max_attempts: int,
               project: str = "default") -> dict:
        job = Job(
            id=uuid.uuid4().hex,
            name=spec.get("name") or "job",
            project=project,
            state="queued",
            spec=spec,
            summary=summary,
            queue=spec.get("queue", "default"),
            priority=spec.get("priority", 0),
            max_attempts=max_attempts,
            epochs=epochs,
            created_at=utcnow(),
        )
        with session_scope(self.url) as s:
            s.add(job)
            s.flush()
            return job_view(s, job)

    def delete(self, job_id: str) -> None:
        """Remove a job that was never handed to the queue (dispatch failed)."""
        with session_scope(self.url) as s:
            job = s.get(Job, job_id)
            if job is not None and job.attempts == 0:
                s.delete(job)

    def get(self, job_id: str, project: str | None = None) -> dict:
        """The job; NotFound if it does not exist or belongs to another ``project``.

        ``project=None`` (an admin, or the workers) sees every project's jobs.
        """
        with session_scope(self.url) as s:
            return job_view(s, self._job(s, job_id, project))

    def summary(self, job_id: str, project: str | None = None) -> dict | None:
        with session_scope(self.url) as s:
            return self._job(s, job_id, project).summary

    def list(self, state: str | None, limit: int, cursor: str | None,
             project: str | None = None) -> tuple[list[dict], str | None]:
        """Newest first; ``cursor`` is the id of the last job of the previous page.

        A page takes the same number of queries whatever its size (views read in bulk).
        """
        from service.store.views import job_views

        with session_scope(self.url) as s:
            q = select(Job)
            if state:
                q = q.where(Job.state == state)
            if project is not None:
                q = q.where(Job.project == project)
            if cursor:
                last = s.get(Job, cursor) if len(cursor) <= 32 else None
                if last is None or (project is not None and last.project != project):
                    raise NotFound("unknown cursor")
                q = q.where(
                    or_(
                        Job.created_at < last.created_at,
                        and_(Job.created_at == last.created_at, Job.id < last.id),
                    )
                )
            rows = s.scalars(q.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)).all()
            more = len(rows) > limit
            rows = rows[:limit]
            return job_views(s, rows), (rows[-1].id if more else None)

    def request_cancel(self, job_id: str, project: str | None = None) -> dict:
        """Cancel a queued job at once; ask a running one's worker to stop."""
        now = utcnow()
        with session_scope(self.url) as s:
            job = self._job(s, job_id, project)
            if job.state in ENDED:
                raise Conflict(f"job {job_id} has already ended ({job.state})")
            s.execute(
                update(Job)
                .where(Job.id == job_id, Job.state == "queued")
                .values(state="cancelled", cancel_requested=True, finished_at=now, updated_at=now)
            )
            s.execute(
                update(Job)
                .where(Job.id == job_id, Job.state == "running")
                .values(cancel_requested=True, updated_at=now)
            )
            s.expire_all()
            return job_view(s, self._job(s, job_id))

    def attempts(self, job_id: str, project: str | None = None) -> list[dict]:
        with session_scope(self.url) as s:
            self._job(s, job_id, project)
            rows = s.scalars(
                select(Attempt).where(Attempt.job_id == job_id).order_by(Attempt.number)
            ).all()
            return [attempt_view(a) for a in rows]

    def checkpoints(self, job_id: str, include_deleted: bool = False,
                    project: str | None = None) -> list[dict]:
        """Committed checkpoints of a job, oldest first."""
        with session_scope(self.url) as s:
            self._job(s, job_id, project)
            q = select(Checkpoint).where(Checkpoint.job_id == job_id)
            if not include_deleted:
                q = q.where(Checkpoint.deleted.is_(False))
            return [checkpoint_view(c) for c in s.scalars(q.order_by(Checkpoint.step)).all()]

    # -- the worker side (fenced) ---------------------------------------------------

    def claim(self, job_id: str, worker: str, lease_seconds: float) -> Claim | None:
        """Take the job if it is queued or its lease expired; None if another holds it.

        Taking over an expired lease counts the attempt it ends as lost, as the reaper
        would; when that was the job's last attempt the job fails instead.
        """
        now = utcnow()
        with session_scope(self.url) as s:
            claimable = or_(
                Job.state == "queued",
                and_(Job.state == "running", Job.lease_expires_at < now,
                     Job.lost_attempts + 1 < Job.max_attempts),
            )
            row = s.execute(
                update(Job)
                .where(Job.id == job_id, claimable, Job.cancel_requested.is_(False))
                .values(
                    state="running",
                    attempts=Job.attempts + 1,
                    lost_attempts=Job.lost_attempts + case((Job.state == "running", 1), else_=0),
                    worker=worker,
                    lease_expires_at=now + timedelta(seconds=lease_seconds),
                    started_at=func.coalesce(Job.started_at, now),
                    updated_at=now,
                )
                .returning(Job.attempts, Job.current_attempt_id)
            ).first()
            if row is None:
                for held in lost.expired(s, now, job_id):  # out of attempts, or cancelled
                    lost.lose(s, held, *lost.LEASE_EXPIRED, now, Job.lease_expires_at < now)
                return None
            number, previous = row
            if previous is not None:
                code, message = lost.LEASE_EXPIRED
                s.execute(
                    update(Attempt)
                    .where(Attempt.id == previous, Attempt.state == "running")
                    .values(state="lost", ended_at=now, error_code=code, error_message=message)
                )
            attempt = Attempt(job_id=job_id, number=number, worker=worker, state="running",
                              started_at=now, heartbeat_at=now, resumed_from_step=0)
            s.add(attempt)
            s.flush()
            s.execute(update(Job).where(Job.id == job_id).values(current_attempt_id=attempt.id))
            job = s.get(Job, job_id)
            cps = s.scalars(
                select(Checkpoint)
                .where(Checkpoint.job_id == job_id, Checkpoint.deleted.is_(False))
                .order_by(Checkpoint.step.desc())
            ).all()
            return Claim(job_id, attempt.id, number, job.spec, [checkpoint_view(c) for c in cps],
                         project=job.project)

    def mark_resumed(self, job_id: str, attempt_id: int, step: int) -> None:
        with session_scope(self.url) as s:
            s.execute(
                update(Attempt).where(Attempt.id == attempt_id)
                .values(resumed_from_step=step, last_step=step)
            )

    def renew(self, job_id: str, attempt_id: int, lease_seconds: float,
              progress: dict | None = None) -> bool:
        """Extend the lease and record progress; True if a cancel was asked for.

        Raises LeaseLost when the attempt is no longer the job's current one.
        """
        now = utcnow()
        values = {"lease_expires_at": now + timedelta(seconds=lease_seconds), "updated_at": now}
        if progress:
            values.update({k: progress[k] for k in ("epoch", "batch", "step", "steps_per_epoch")
                           if k in progress})
        with session_scope(self.url) as s:
            row = s.execute(
                update(Job)
                .where(Job.id == job_id, Job.current_attempt_id == attempt_id,
                       Job.state == "running")
                .values(**values)
                .returning(Job.cancel_requested)
            ).first()
            if row is None:
                raise LeaseLost("this attempt no longer holds the job")
            attempt_values = {"heartbeat_at": now}
            if progress and "step" in progress:
                attempt_values["last_step"] = progress["step"]
            s.execute(update(Attempt).where(Attempt.id == attempt_id).values(**attempt_values))
            return bool(row[0])

    def commit_checkpoint(self, job_id: str, attempt_id: int, record: dict) -> int:
        """Insert a checkpoint row and move the job's pointer to it, fenced."""
        now = utcnow()
        with session_scope(self.url) as s:
            held = s.execute(
                select(Job.id).where(Job.id == job_id, Job.current_attempt_id == attempt_id,
                                     Job.state == "running").with_for_update()
            ).first()
            if held is None:
                raise LeaseLost("this attempt no longer holds the job; checkpoint not committed")
            old = s.scalars(
                select(Checkpoint).where(Checkpoint.job_id == job_id,
                                         Checkpoint.step == record["step"])
            ).first()
            if old is not None:  # a replay of a step a lost attempt had saved: replace it
                s.delete(old)
                s.flush()
            cp = Checkpoint(job_id=job_id, attempt_id=attempt_id, created_at=now, **record)
            s.add(cp)
            s.flush()
            s.execute(update(Job).where(Job.id == job_id)
                      .values(latest_checkpoint_id=cp.id, updated_at=now))
            return cp.id

    def mark_checkpoints_deleted(self, job_id: str, steps: list[int]) -> None:
        if not steps:
            return
        with session_scope(self.url) as s:
            s.execute(update(Checkpoint)
                      .where(Checkpoint.job_id == job_id, Checkpoint.step.in_(steps))
                      .values(deleted=True))

    def finish(self, job_id: str, attempt_id: int, state: str, *, error_code: str | None = None,
               error_message: str | None = None, model_uri: str | None = None,
               stopped: dict | None = None) -> None:
        """End the job (succeeded, failed or cancelled), fenced by the attempt.

        ``stopped`` (where and why a callback such as EarlyStopping ended training) goes
        into the job's summary under ``"stopped"``.
        """
        now = utcnow()
        with session_scope(self.url) as s:
            values = {"state": state, "finished_at": now, "updated_at": now,
                      "lease_expires_at": None, "error_code": error_code,
                      "error_message": error_message}
            if model_uri:
                values["model_uri"] = model_uri
            if stopped:
                summary = s.scalar(select(Job.summary).where(Job.id == job_id))
                values["summary"] = {**(summary or {}), "stopped": stopped}
            done = s.execute(
                update(Job).where(Job.id == job_id, Job.current_attempt_id == attempt_id,
                                  Job.state == "running").values(**values)
            ).rowcount
            if not done:
                raise LeaseLost("this attempt no longer holds the job; state not changed")
            s.execute(update(Attempt).where(Attempt.id == attempt_id).values(
                state=state, ended_at=now, error_code=error_code, error_message=error_message))

    def release(self, job_id: str, attempt_id: int, reason: str) -> bool:
        """Give a running job back to the queue (preemption); True if it was still ours."""
        now = utcnow()
        with session_scope(self.url) as s:
            done = s.execute(
                update(Job).where(Job.id == job_id, Job.current_attempt_id == attempt_id,
                                  Job.state == "running")
                .values(state="queued", worker=None, lease_expires_at=None, updated_at=now)
            ).rowcount
            if done:
                s.execute(update(Attempt).where(Attempt.id == attempt_id).values(
                    state="preempted", ended_at=now, error_code="preempted",
                    error_message=reason))
            return bool(done)

    # -- the reaper side ------------------------------------------------------------

    def reap(self) -> tuple[list[dict], list[str]]:
        """Requeue jobs whose lease expired; fail those out of attempts.

        Returns (jobs to re-enqueue as dicts with id/queue/priority, ids failed).
        """
        now = utcnow()
        with session_scope(self.url) as s:
            rows = lost.expired(s, now)
        return self._settle(rows, *lost.LEASE_EXPIRED, now, Job.lease_expires_at < now)

    def release_lost(self, worker: str, code: str, message: str) -> tuple[list[dict], list[str]]:
        """Count the attempt ``worker`` (a process that died) held as lost, at once.

        Its job is requeued while attempts remain, else failed with ``message`` as the
        last reason. Returns what :meth:`reap` returns.
        """
        now = utcnow()
        with session_scope(self.url) as s:
            rows = lost.held_by(s, worker)
        return self._settle(rows, code, message, now, Job.worker == worker)

    def _settle(self, rows, code: str, message: str, now, *guard) -> tuple[list[dict], list[str]]:
        requeue, failed = [], []
        for row in rows:  # one transaction per job: one job's conflict does not undo another
            with session_scope(self.url) as s:
                state = lost.lose(s, row, code, message, now, *guard)
            if state == "queued":
                requeue.append({"id": row.id, "queue": row.queue, "priority": row.priority})
            elif state == "failed":
                failed.append(row.id)
        return requeue, failed

    def queued_counts(self) -> dict[str, int]:
        """Queued jobs per queue."""
        with session_scope(self.url) as s:
            rows = s.execute(select(Job.queue, func.count()).where(Job.state == "queued")
                             .group_by(Job.queue)).all()
            return {queue: n for queue, n in rows}

    def stale_queued(self, seconds: float) -> list[dict]:
        """Queued jobs untouched for ``seconds``; each is touched so one sweep re-sends it."""
        now = utcnow()
        cutoff = now - timedelta(seconds=seconds)
        out = []
        with session_scope(self.url) as s:
            rows = s.execute(
                select(Job.id, Job.queue, Job.priority)
                .where(Job.state == "queued", Job.updated_at < cutoff).limit(500)
            ).all()
            for job_id, queue, priority in rows:
                done = s.execute(
                    update(Job).where(Job.id == job_id, Job.state == "queued",
                                      Job.updated_at < cutoff).values(updated_at=now)
                ).rowcount
                if done:
                    out.append({"id": job_id, "queue": queue, "priority": priority,
                                "why": f"queued and unclaimed for over {seconds:g}s"})
        return out

    # -- views ------------------------------------------------------------------------

    @staticmethod
    def _job(s, job_id: str, project: str | None = None) -> Job:
        job = s.get(Job, job_id) if isinstance(job_id, str) and len(job_id) <= 32 else None
        if job is None or (project is not None and job.project != project):
            raise NotFound(f"no job with id {job_id!r}")
        return job
