"""Gang claims: the N workers of a multi-worker job claim it together, all or none.

A worker that receives a multi-worker job's message joins the job's forming gang (or
starts one) with the address its peers will reach it at. The member whose join fills
the gang forms it, in the same transaction: each member gets its own attempt row, the
job goes ``running`` with rank 0's (the chief's) attempt as its current one, so every
fenced write of the job (checkpoints, the end) is the chief's, exactly as a single
worker's. A member that waited past the formation timeout leaves; a gang none is left
in is ended, so no two half-formed gangs can hold the fleet. Any member that stops
breaks the gang: the job goes back to the queue (one lost attempt) and every member's
attempt ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select, update

from service.core.errors import LeaseLost
from service.store.db import session_scope
from service.store.gang_ends import GangEnds
from service.store.leases import Claim, new_attempt
from service.store.tables import Attempt, Checkpoint, Gang, GangMember, Job, utcnow
from service.store.views import checkpoint_view


def gang_size(spec: dict) -> int:
    """Workers a job trains on: ``distribute.workers`` of a multi-worker job, else 1."""
    distribute = spec.get("distribute")
    if isinstance(distribute, dict) and distribute.get("strategy") == "multi_worker_mirrored":
        return int(distribute.get("workers", 1))
    return 1


@dataclass(frozen=True)
class Membership:
    """A worker's place in a gang: ``filled`` when its join made the gang full."""

    job_id: str
    gang_id: int
    rank: int
    size: int
    filled: bool


@dataclass(frozen=True)
class Formed:
    """A full gang as one member sees it: its claim (its own attempt), rank and peers."""

    claim: Claim
    gang_id: int
    rank: int
    addresses: list[str]


class GangStore(GangEnds):
    """Join, form, leave and renew gangs; each one transaction. How gangs end comes from
    :class:`service.store.gang_ends.GangEnds`."""

    def __init__(self, url: str):
        self.url = url

    def spec_of(self, job_id: str) -> dict | None:
        """The job's spec (None for an unknown job), to tell a multi-worker job."""
        with session_scope(self.url) as s:
            return s.scalar(select(Job.spec).where(Job.id == job_id))

    def join(
        self, job_id: str, worker: str, address: str, lease_seconds: float
    ) -> Membership | None:
        """Take a rank in the job's forming gang (starting one); None if none is to be had
        (the job is not queued, was cancelled, or its gang is full)."""
        now = utcnow()
        with session_scope(self.url) as s:
            locked = s.execute(  # the job row's lock orders concurrent joins
                update(Job)
                .where(Job.id == job_id, Job.state == "queued", Job.cancel_requested.is_(False))
                .values(updated_at=now)
                .returning(Job.spec)
            ).first()
            if locked is None:
                return None
            size = gang_size(locked[0])
            gang = s.scalars(
                select(Gang).where(Gang.job_id == job_id, Gang.state == "forming")
            ).first()
            if gang is None:
                gang = Gang(job_id=job_id, size=size, state="forming", created_at=now)
                s.add(gang)
                s.flush()
            ranks = set(s.scalars(select(GangMember.rank).where(GangMember.gang_id == gang.id)))
            if len(ranks) >= gang.size:
                return None
            rank = min(set(range(gang.size)) - ranks)
            s.add(
                GangMember(
                    gang_id=gang.id, rank=rank, worker=worker, address=address, joined_at=now
                )
            )
            s.flush()
            filled = len(ranks) + 1 == gang.size
            if filled:
                self._form(s, gang, lease_seconds)
            return Membership(job_id, gang.id, rank, gang.size, filled)

    def _form(self, s, gang: Gang, lease_seconds: float) -> None:
        """The gang is full: an attempt row for each member, and the job running."""
        now = utcnow()
        job = s.get(Job, gang.job_id)
        number = job.attempts + 1
        members = s.scalars(
            select(GangMember).where(GangMember.gang_id == gang.id).order_by(GangMember.rank)
        ).all()
        for m in members:
            m.attempt_id = new_attempt(s, gang.job_id, number, m.worker, now).id
        s.execute(
            update(Job)
            .where(Job.id == gang.job_id)
            .values(
                state="running",
                attempts=number,
                current_attempt_id=members[0].attempt_id,
                worker=members[0].worker,
                lease_expires_at=now + timedelta(seconds=lease_seconds),
                started_at=func.coalesce(Job.started_at, now),
                updated_at=now,
            )
        )
        gang.state, gang.formed_at = "running", now

    def formed(self, membership: Membership) -> Formed | None:
        """The gang as this member sees it once it is full; None while it is forming.

        Raises LeaseLost when the gang ended before this member saw it formed.
        """
        with session_scope(self.url) as s:
            gang = s.get(Gang, membership.gang_id)
            if gang is None or gang.state == "ended":
                raise LeaseLost("the job's gang ended before it formed")
            if gang.state == "forming":
                return None
            members = s.scalars(
                select(GangMember).where(GangMember.gang_id == gang.id).order_by(GangMember.rank)
            ).all()
            mine = next(m for m in members if m.rank == membership.rank)
            job = s.get(Job, gang.job_id)
            cps = s.scalars(
                select(Checkpoint)
                .where(Checkpoint.job_id == job.id, Checkpoint.deleted.is_(False))
                .order_by(Checkpoint.step.desc())
            ).all()
            number = s.scalar(select(Attempt.number).where(Attempt.id == mine.attempt_id))
            claim = Claim(
                job.id,
                mine.attempt_id,
                number,
                job.spec,
                [checkpoint_view(c) for c in cps],
                project=job.project,
            )
            return Formed(claim, gang.id, mine.rank, [m.address for m in members])

    def leave(self, membership: Membership) -> bool:
        """Give this member back from a gang still forming; False if it formed meanwhile.

        The last member to leave ends the gang.
        """
        now = utcnow()
        with session_scope(self.url) as s:
            gang = s.execute(
                select(Gang).where(Gang.id == membership.gang_id).with_for_update()
            ).scalar_one_or_none()
            if gang is None or gang.state == "running":
                return gang is None
            s.query(GangMember).filter(
                GangMember.gang_id == gang.id, GangMember.rank == membership.rank
            ).delete()
            left = s.scalar(select(func.count()).where(GangMember.gang_id == gang.id))
            if not left:
                gang.state, gang.ended_at = "ended", now
            return True

    def renew(
        self, job_id: str, attempt_id: int, lease_seconds: float, progress: dict | None = None
    ) -> bool:
        """A member's heartbeat (not the chief's): True if a cancel was asked for.

        Raises LeaseLost when the member's gang no longer holds the job.
        """
        now = utcnow()
        with session_scope(self.url) as s:
            row = s.execute(
                select(Job.state, Job.cancel_requested, Job.current_attempt_id, Gang.id)
                .join(Gang, Gang.job_id == Job.id)
                .join(GangMember, GangMember.gang_id == Gang.id)
                .where(
                    Job.id == job_id,
                    GangMember.attempt_id == attempt_id,
                    Gang.state == "running",
                )
            ).first()
            if row is None:
                raise LeaseLost("this member's gang no longer holds the job")
            state, cancel, current, gang_id = row
            ours = s.scalar(
                select(func.count()).where(
                    GangMember.gang_id == gang_id, GangMember.attempt_id == current
                )
            )
            if state == "queued" or (state == "running" and not ours):
                raise LeaseLost("this member's gang no longer holds the job")
            values = {"heartbeat_at": now}
            if progress and "step" in progress:
                values["last_step"] = progress["step"]
            s.execute(update(Attempt).where(Attempt.id == attempt_id).values(**values))
            return bool(cancel)
