"""How gangs end: a member's own end, a broken gang (the job back to the queue, every
member's attempt lost), and the reaper's sweep of gangs whose member went silent.

:class:`GangEnds` holds these for :class:`service.store.gangs.GangStore`.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update

from service.store import lost
from service.store.db import session_scope
from service.store.tables import Attempt, Gang, GangMember, Job, utcnow

MEMBER_LOST = ("gang_member_lost", "a member of the job's gang of workers stopped")


class GangEnds:
    """A member's end, a broken gang, the reaper's sweep."""

    url: str  # the database URL, set by GangStore

    def running_members(self, gang_id: int) -> int:
        """Members of the gang whose attempt is still running."""
        with session_scope(self.url) as s:
            return s.scalar(
                select(func.count())
                .select_from(GangMember)
                .join(Attempt, Attempt.id == GangMember.attempt_id)
                .where(GangMember.gang_id == gang_id, Attempt.state == "running")
            )

    def end_member(self, attempt_id: int, state: str, code=None, message=None) -> None:
        """Record how a member's attempt ended (the chief's ends with the job)."""
        now = utcnow()
        with session_scope(self.url) as s:
            s.execute(
                update(Attempt)
                .where(Attempt.id == attempt_id, Attempt.state == "running")
                .values(state=state, ended_at=now, error_code=code, error_message=message)
            )

    def break_gang(self, gang_id: int, code: str, message: str) -> dict | None:
        """End a running gang: the job back to the queue (one lost attempt, or failed once
        out of attempts) and every member's running attempt lost. Returns the job
        (``id``, ``queue``, ``priority``) when it went back to the queue."""
        now = utcnow()
        with session_scope(self.url) as s:
            gang = s.execute(
                select(Gang).where(Gang.id == gang_id).with_for_update()
            ).scalar_one_or_none()
            if gang is None or gang.state != "running":
                return None
            gang.state, gang.ended_at = "ended", now
            attempts = list(
                s.scalars(select(GangMember.attempt_id).where(GangMember.gang_id == gang_id))
            )
            row = s.execute(
                select(*lost.COLUMNS).where(
                    Job.id == gang.job_id,
                    Job.state == "running",
                    Job.current_attempt_id.in_(attempts),
                )
            ).first()
            new_state = lost.lose(s, row, code, message, now) if row is not None else None
            s.execute(
                update(Attempt)
                .where(Attempt.id.in_(attempts), Attempt.state == "running")
                .values(state="lost", ended_at=now, error_code=code, error_message=message)
            )
            if new_state != "queued":
                return None
            return {"id": row[0], "queue": row[4], "priority": row[5]}

    def reap(self, lease_seconds: float, form_seconds: float) -> list[dict]:
        """Break running gangs a member of which stopped renewing (or whose job moved on),
        and end forming gangs whose members waited far past the formation timeout (they
        died waiting). Returns the jobs to send again, as :meth:`break_gang`."""
        now = utcnow()
        stale = now - timedelta(seconds=lease_seconds)
        with session_scope(self.url) as s:
            running = s.execute(
                select(Gang.id, Job.state, Job.current_attempt_id)
                .join(Job, Job.id == Gang.job_id)
                .where(Gang.state == "running")
            ).all()
            silent = set(
                s.scalars(
                    select(GangMember.gang_id)
                    .join(Attempt, Attempt.id == GangMember.attempt_id)
                    .join(Gang, Gang.id == GangMember.gang_id)
                    .where(
                        Gang.state == "running",
                        Attempt.state == "running",
                        Attempt.heartbeat_at < stale,
                    )
                )
            )
            old = now - timedelta(seconds=2 * form_seconds + lease_seconds)
            for gang in s.scalars(
                select(Gang).where(Gang.state == "forming", Gang.created_at < old)
            ):
                s.query(GangMember).filter(GangMember.gang_id == gang.id).delete()
                gang.state, gang.ended_at = "ended", now
        out = []
        for gang_id, state, current in running:
            if state == "running" and current in self._attempts(gang_id):
                if gang_id in silent:
                    job = self.break_gang(gang_id, *MEMBER_LOST)
                    if job is not None:
                        out.append({**job, "why": "a member of its gang stopped"})
            else:  # the job ended, or was handed back: the gang is over
                self._end(gang_id, stale)
        return out

    def _end(self, gang_id: int, stale) -> None:
        """A gang whose job moved on: members that stopped renewing are lost, and the gang
        ends once no member's attempt runs."""
        now = utcnow()
        with session_scope(self.url) as s:
            attempts = select(GangMember.attempt_id).where(GangMember.gang_id == gang_id)
            code, message = MEMBER_LOST
            s.execute(
                update(Attempt)
                .where(
                    Attempt.id.in_(attempts),
                    Attempt.state == "running",
                    Attempt.heartbeat_at < stale,
                )
                .values(state="lost", ended_at=now, error_code=code, error_message=message)
            )
            still = s.scalar(
                select(func.count()).where(Attempt.id.in_(attempts), Attempt.state == "running")
            )
            if not still:
                s.execute(
                    update(Gang)
                    .where(Gang.id == gang_id, Gang.state == "running")
                    .values(state="ended", ended_at=now)
                )

    def _attempts(self, gang_id: int) -> set[int]:
        with session_scope(self.url) as s:
            return set(
                s.scalars(select(GangMember.attempt_id).where(GangMember.gang_id == gang_id))
            )

    def forming(self, older_than: float) -> list[dict]:
        """Jobs (``id``, ``queue``, ``priority``) whose gang has been forming longer than
        ``older_than`` seconds: the reaper sends their message again when their queue
        holds none (a message can sit reserved by a busy worker)."""
        since = utcnow() - timedelta(seconds=older_than)
        with session_scope(self.url) as s:
            rows = s.execute(
                select(Job.id, Job.queue, Job.priority)
                .join(Gang, Gang.job_id == Job.id)
                .where(Gang.state == "forming", Gang.created_at < since, Job.state == "queued")
            ).all()
            return [{"id": r[0], "queue": r[1], "priority": r[2]} for r in rows]
