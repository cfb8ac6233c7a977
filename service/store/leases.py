"""The worker's side of a job: the claim, the lease and the writes fenced by the attempt.

A worker claims a job atomically, renews its lease while it trains and, while its attempt
is still the job's current one, commits checkpoints, records where it resumed, and ends
the job or gives it back to the queue. :class:`WorkerTransitions` holds these for
:class:`service.store.jobs.JobStore`; each is one guarded UPDATE in one transaction.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import and_, case, func, or_, select, update

from service.core.errors import LeaseLost
from service.store import events, lost
from service.store.db import session_scope
from service.store.tables import Attempt, Checkpoint, Job, Worker, utcnow
from service.store.views import checkpoint_view


@dataclass(frozen=True)
class Renewal:
    """What a lease renewal learns: whether a cancel, or a preemption, was asked for."""

    cancel: bool
    preempt: bool


@dataclass(frozen=True)
class Claim:
    """What a worker holds after it claimed a job: its fencing token and where to start."""

    job_id: str
    attempt_id: int
    number: int
    spec: dict
    checkpoints: list[dict]
    project: str = "default"


class WorkerTransitions:
    """Claim, renew, commit_checkpoint, finish, release: what a worker's attempt may do."""

    url: str  # the database URL, set by JobStore

    def claim(self, job_id: str, worker: str, lease_seconds: float, gpus: int = 0) -> Claim | None:
        """Take the job named ``job_id`` if it is queued or its lease expired; None if another
        holds it. (Workers ask the scheduler instead, which chooses the job:
        :meth:`service.store.scheduler.Scheduler.claim_next`.)

        Taking over an expired lease counts the attempt it ends as lost, as the reaper
        would; when that was the job's last attempt the job fails instead.
        """
        now = utcnow()
        with session_scope(self.url) as s:
            claim = take(s, job_id, worker, lease_seconds, now, gpus, expired_too=True)
            if claim is None:
                for held in lost.expired(s, now, job_id):  # out of attempts, or cancelled
                    lost.lose(s, held, *lost.LEASE_EXPIRED, now, Job.lease_expires_at < now)
            return claim

    def mark_resumed(self, job_id: str, attempt_id: int, step: int) -> None:
        with session_scope(self.url) as s:
            s.execute(
                update(Attempt)
                .where(Attempt.id == attempt_id)
                .values(resumed_from_step=step, last_step=step)
            )

    def renew(
        self, job_id: str, attempt_id: int, lease_seconds: float, progress: dict | None = None
    ) -> bool:
        """Extend the lease and record progress; True if a cancel was asked for.

        Raises LeaseLost when the attempt is no longer the job's current one.
        """
        return self.renew_lease(job_id, attempt_id, lease_seconds, progress).cancel

    def renew_lease(
        self, job_id: str, attempt_id: int, lease_seconds: float, progress: dict | None = None
    ) -> Renewal:
        """:meth:`renew`, answering both requests a worker acts on: cancel and preempt."""
        now = utcnow()
        values = {"lease_expires_at": now + timedelta(seconds=lease_seconds), "updated_at": now}
        if progress:
            values.update(
                {
                    k: progress[k]
                    for k in ("epoch", "batch", "step", "steps_per_epoch")
                    if k in progress
                }
            )
        with session_scope(self.url) as s:
            row = s.execute(
                update(Job)
                .where(
                    Job.id == job_id, Job.current_attempt_id == attempt_id, Job.state == "running"
                )
                .values(**values)
                .returning(Job.cancel_requested, Job.preempt_requested)
            ).first()
            if row is None:
                raise LeaseLost("this attempt no longer holds the job")
            attempt_values = {"heartbeat_at": now}
            if progress and "step" in progress:
                attempt_values["last_step"] = progress["step"]
            s.execute(update(Attempt).where(Attempt.id == attempt_id).values(**attempt_values))
            return Renewal(bool(row[0]), bool(row[1]))

    def commit_checkpoint(
        self, job_id: str, attempt_id: int, record: dict, timing: dict | None = None
    ) -> int:
        """Insert a checkpoint row and move the job's pointer to it, fenced.

        ``timing`` (seconds the training thread was blocked, seconds in the background)
        goes into the ``checkpoint`` event.
        """
        now = utcnow()
        with session_scope(self.url) as s:
            held = s.execute(
                select(Job.id)
                .where(
                    Job.id == job_id, Job.current_attempt_id == attempt_id, Job.state == "running"
                )
                .with_for_update()
            ).first()
            if held is None:
                raise LeaseLost("this attempt no longer holds the job; checkpoint not committed")
            old = s.scalars(
                select(Checkpoint).where(
                    Checkpoint.job_id == job_id, Checkpoint.step == record["step"]
                )
            ).first()
            if old is not None:  # a replay of a step a lost attempt had saved: replace it
                s.delete(old)
                s.flush()
            cp = Checkpoint(job_id=job_id, attempt_id=attempt_id, created_at=now, **record)
            s.add(cp)
            s.flush()
            s.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(latest_checkpoint_id=cp.id, updated_at=now)
            )
            data = {"step": cp.step, "bytes": cp.bytes, **(timing or {})}
            events.append(s, job_id, events.CHECKPOINT, attempt_id=attempt_id, data=data, at=now)
            return cp.id

    def mark_checkpoints_deleted(self, job_id: str, steps: list[int]) -> None:
        if not steps:
            return
        with session_scope(self.url) as s:
            s.execute(
                update(Checkpoint)
                .where(Checkpoint.job_id == job_id, Checkpoint.step.in_(steps))
                .values(deleted=True)
            )

    def finish(
        self,
        job_id: str,
        attempt_id: int,
        state: str,
        *,
        error_code: str | None = None,
        error_message: str | None = None,
        model_uri: str | None = None,
        stopped: dict | None = None,
    ) -> None:
        """End the job (succeeded, failed or cancelled), fenced by the attempt.

        ``stopped`` (where and why a callback such as EarlyStopping ended training) goes
        into the job's summary under ``"stopped"``.
        """
        now = utcnow()
        with session_scope(self.url) as s:
            values = {
                "state": state,
                "finished_at": now,
                "updated_at": now,
                "lease_expires_at": None,
                "error_code": error_code,
                "error_message": error_message,
            }
            if model_uri:
                values["model_uri"] = model_uri
            if stopped:
                summary = s.scalar(select(Job.summary).where(Job.id == job_id))
                values["summary"] = {**(summary or {}), "stopped": stopped}
            done = s.execute(
                update(Job)
                .where(
                    Job.id == job_id, Job.current_attempt_id == attempt_id, Job.state == "running"
                )
                .values(**values)
            ).rowcount
            if not done:
                raise LeaseLost("this attempt no longer holds the job; state not changed")
            s.execute(
                update(Attempt)
                .where(Attempt.id == attempt_id)
                .values(
                    state=state, ended_at=now, error_code=error_code, error_message=error_message
                )
            )
            ended = {"state": state, "error_code": error_code, "error_message": error_message}
            events.append(s, job_id, events.FINISHED, attempt_id=attempt_id, data=ended, at=now)

    def release(self, job_id: str, attempt_id: int, reason: str) -> bool:
        """Give a running job back to the queue (preemption); True if it was still ours.

        The job keeps its ``created_at``, so it keeps its place by age among its priority;
        a preemption the scheduler asked for is counted in ``preemptions``.
        """
        now = utcnow()
        with session_scope(self.url) as s:
            done = s.execute(
                update(Job)
                .where(
                    Job.id == job_id, Job.current_attempt_id == attempt_id, Job.state == "running"
                )
                .values(
                    state="queued",
                    worker=None,
                    gpus=0,
                    lease_expires_at=None,
                    updated_at=now,
                    preemptions=Job.preemptions + case((Job.preempt_requested, 1), else_=0),
                    preempt_requested=False,
                )
            ).rowcount
            if done:
                s.execute(
                    update(Attempt)
                    .where(Attempt.id == attempt_id)
                    .values(
                        state="preempted",
                        ended_at=now,
                        error_code="preempted",
                        error_message=reason,
                    )
                )
                step = s.scalar(select(Attempt.last_step).where(Attempt.id == attempt_id))
                for type, data in (
                    (events.PREEMPTED, {"reason": reason}),
                    (events.RELEASED, {"step": step}),
                    (events.REQUEUED, {"after": "released"}),
                ):
                    events.append(s, job_id, type, attempt_id=attempt_id, data=data, at=now)
            return bool(done)

    def note(self, job_id: str, attempt_id: int, type: str, data: dict, at=None) -> bool:
        """Append an event the worker saw (restored, first batch), fenced: only while
        the attempt holds the job. True if it was appended."""
        with session_scope(self.url) as s:
            held = s.scalar(
                select(Job.id).where(
                    Job.id == job_id, Job.current_attempt_id == attempt_id, Job.state == "running"
                )
            )
            if held is not None:
                events.append(s, job_id, type, attempt_id=attempt_id, data=data, at=at)
            return held is not None


def _where(s, worker: str) -> dict:
    """The ``claimed`` event's data: the worker, its host and GPUs (from its presence row,
    else this process's host: a claim runs in the worker)."""
    row = s.execute(select(Worker.hostname, Worker.gpus).where(Worker.name == worker)).first()
    if row is None:
        return {"worker": worker, "host": socket.gethostname(), "gpus": None}
    return {"worker": worker, "host": row.hostname, "gpus": row.gpus}


def new_attempt(s, job_id: str, number: int, worker: str, now) -> Attempt:
    """In session ``s``: attempt ``number`` of the job, running on ``worker`` from ``now``
    (flushed, so its id is known)."""
    attempt = Attempt(
        job_id=job_id,
        number=number,
        worker=worker,
        state="running",
        started_at=now,
        heartbeat_at=now,
        resumed_from_step=0,
    )
    s.add(attempt)
    s.flush()
    return attempt


def take(
    s,
    job_id: str,
    worker: str,
    lease_seconds: float,
    now,
    gpus: int = 0,
    expired_too: bool = False,
) -> Claim | None:
    """In session ``s``: the guarded UPDATE that makes ``worker``'s attempt the job's current
    one, and the attempt row; None when the job is not claimable (it is running, ended or
    cancelled; with ``expired_too``, a running job whose lease expired is taken over)."""
    claimable = Job.state == "queued"
    if expired_too:
        claimable = or_(
            claimable,
            and_(
                Job.state == "running",
                Job.lease_expires_at < now,
                Job.lost_attempts + 1 < Job.max_attempts,
            ),
        )
    row = s.execute(
        update(Job)
        .where(Job.id == job_id, claimable, Job.cancel_requested.is_(False))
        .values(
            state="running",
            attempts=Job.attempts + 1,
            lost_attempts=Job.lost_attempts + case((Job.state == "running", 1), else_=0),
            worker=worker,
            gpus=gpus,
            preempt_requested=False,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            started_at=func.coalesce(Job.started_at, now),
            updated_at=now,
        )
        .returning(Job.attempts, Job.current_attempt_id)
    ).first()
    if row is None:
        return None
    number, previous = row
    if previous is not None:
        code, message = lost.LEASE_EXPIRED
        taken = s.execute(
            update(Attempt)
            .where(Attempt.id == previous, Attempt.state == "running")
            .values(state="lost", ended_at=now, error_code=code, error_message=message)
        ).rowcount
        if taken:
            lost.record_lost(s, job_id, previous, code, message, now)
    attempt = new_attempt(s, job_id, number, worker, now)
    s.execute(update(Job).where(Job.id == job_id).values(current_attempt_id=attempt.id))
    job = s.get(Job, job_id)
    events.append(s, job_id, events.CLAIMED, attempt=number, data=_where(s, worker), at=now)
    cps = s.scalars(
        select(Checkpoint)
        .where(Checkpoint.job_id == job_id, Checkpoint.deleted.is_(False))
        .order_by(Checkpoint.step.desc())
    ).all()
    return Claim(
        job_id,
        attempt.id,
        number,
        job.spec,
        [checkpoint_view(c) for c in cps],
        project=job.project,
    )
