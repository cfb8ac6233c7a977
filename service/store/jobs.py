"""Job state transitions: each one is a single guarded UPDATE in one transaction.

States: ``queued -> running -> succeeded | failed | cancelled`` and ``running -> queued``
when an attempt is lost or preempted. Writes a worker makes on a job's behalf are fenced
by its attempt id: they take effect only while that attempt is the job's current one
(those live in :mod:`service.store.leases`). This module holds creation, reads, cancel
and the job list for the API, and the reaper's sweeps. ORM rows never leave the store;
callers get plain dicts.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

from sqlalchemy import and_, func, or_, select, update

from service.core.errors import Conflict, NotFound
from service.store import events, lost
from service.store.db import session_scope
from service.store.gangs import gang_size
from service.store.leases import Claim, WorkerTransitions
from service.store.tables import ENDED, Attempt, Checkpoint, Job, utcnow
from service.store.views import attempt_view, checkpoint_view, job_view

__all__ = ["ENDED", "Claim", "JobStore"]


JOB_ID = re.compile(r"[0-9a-f]{32}")  # uuid4().hex, as create() makes them


def is_job_id(value: object) -> bool:
    """Whether ``value`` could name a job; anything else is not looked up (PostgreSQL
    refuses text holding NUL, so an arbitrary string must never reach a query)."""
    return isinstance(value, str) and JOB_ID.fullmatch(value) is not None


def new_job(
    spec: dict, *, epochs: int, summary: dict | None, max_attempts: int, project: str
) -> Job:
    """A queued job row for an admitted spec, to add in the caller's transaction."""
    return Job(
        id=uuid.uuid4().hex,
        name=spec.get("name") or "job",
        project=project,
        state="queued",
        spec=spec,
        summary=summary,
        queue=spec.get("queue", "default"),
        priority=spec.get("priority", 0),
        workers=gang_size(spec),
        max_attempts=max_attempts,
        epochs=epochs,
        created_at=utcnow(),
    )


class JobStore(WorkerTransitions):
    """The jobs, attempts and checkpoints tables, as seen by the API, workers and reaper.

    The worker's fenced transitions (claim, renew, commit_checkpoint, finish, release)
    come from :class:`service.store.leases.WorkerTransitions`.
    """

    def __init__(self, database_url: str):
        self.url = database_url

    # -- the API side ---------------------------------------------------------------

    def create(
        self,
        spec: dict,
        *,
        epochs: int,
        summary: dict | None,
        max_attempts: int,
        project: str = "default",
    ) -> dict:
        job = new_job(
            spec, epochs=epochs, summary=summary, max_attempts=max_attempts, project=project
        )
        with session_scope(self.url) as s:
            s.add(job)
            s.flush()
            submitted = {k: getattr(job, k) for k in ("name", "queue", "priority", "max_attempts")}
            events.append(s, job.id, events.SUBMITTED, data=submitted, at=job.created_at)
            events.append(s, job.id, events.QUEUED, data={"reason": None}, at=job.created_at)
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

    def list(
        self, state: str | None, limit: int, cursor: str | None, project: str | None = None
    ) -> tuple[list[dict], str | None]:
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
                last = s.get(Job, cursor) if is_job_id(cursor) else None
                if last is None or (project is not None and last.project != project):
                    raise NotFound("unknown cursor")
                q = q.where(
                    or_(
                        Job.created_at < last.created_at,
                        and_(Job.created_at == last.created_at, Job.id < last.id),
                    )
                )
            rows = s.scalars(
                q.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)
            ).all()
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
            was, already = job.state, job.cancel_requested
            ended = s.execute(
                update(Job)
                .where(Job.id == job_id, Job.state == "queued")
                .values(state="cancelled", cancel_requested=True, finished_at=now, updated_at=now)
            ).rowcount
            asked = s.execute(
                update(Job)
                .where(Job.id == job_id, Job.state == "running")
                .values(cancel_requested=True, updated_at=now)
            ).rowcount
            if ended or (asked and not already):
                events.append(s, job_id, events.CANCELLED, data={"while": was}, at=now)
            if ended:
                done = {"state": "cancelled", "error_code": None, "error_message": None}
                events.append(s, job_id, events.FINISHED, data=done, at=now)
            s.expire_all()
            return job_view(s, self._job(s, job_id))

    def attempts(self, job_id: str, project: str | None = None) -> list[dict]:
        with session_scope(self.url) as s:
            self._job(s, job_id, project)
            rows = s.scalars(
                select(Attempt).where(Attempt.job_id == job_id).order_by(Attempt.number)
            ).all()
            return [attempt_view(a) for a in rows]

    def checkpoints(
        self, job_id: str, include_deleted: bool = False, project: str | None = None
    ) -> list[dict]:
        """Committed checkpoints of a job, oldest first."""
        with session_scope(self.url) as s:
            self._job(s, job_id, project)
            q = select(Checkpoint).where(Checkpoint.job_id == job_id)
            if not include_deleted:
                q = q.where(Checkpoint.deleted.is_(False))
            return [checkpoint_view(c) for c in s.scalars(q.order_by(Checkpoint.step)).all()]

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
            rows = s.execute(
                select(Job.queue, func.count()).where(Job.state == "queued").group_by(Job.queue)
            ).all()
            return {queue: n for queue, n in rows}

    def stale_queued(self, seconds: float) -> list[dict]:
        """Queued jobs untouched for ``seconds``; each is touched so one sweep re-sends it."""
        now = utcnow()
        cutoff = now - timedelta(seconds=seconds)
        out = []
        with session_scope(self.url) as s:
            rows = s.execute(
                select(Job.id, Job.queue, Job.priority)
                .where(Job.state == "queued", Job.updated_at < cutoff)
                .limit(500)
            ).all()
            for job_id, queue, priority in rows:
                done = s.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.state == "queued", Job.updated_at < cutoff)
                    .values(updated_at=now)
                ).rowcount
                if done:
                    out.append(
                        {
                            "id": job_id,
                            "queue": queue,
                            "priority": priority,
                            "why": f"queued and unclaimed for over {seconds:g}s",
                        }
                    )
        return out

    # -- views ------------------------------------------------------------------------

    @staticmethod
    def _job(s, job_id: str, project: str | None = None) -> Job:
        job = s.get(Job, job_id) if is_job_id(job_id) else None
        if job is None or (project is not None and job.project != project):
            raise NotFound(f"no job with id {job_id!r}")
        return job
