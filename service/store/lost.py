"""Lost attempts: the one transition that declares a running attempt lost and counts it.

Three things learn that an attempt is lost: the reaper (its lease ran out), a claim that
takes over an expired lease (a redelivered message that beat the reaper), and a worker's
parent process that saw the child holding it die (it knows at once). Each counts one lost
attempt against the job's ``max_attempts``, so the limit holds however the news arrives.
Once it is used up the job fails saying why, and names memory when every attempt ran out
of it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from service.store import events
from service.store.tables import Attempt, Job

LEASE_EXPIRED = ("lease_expired", "the worker stopped renewing its lease")
OUT_OF_MEMORY = "resource_exhausted"
COLUMNS = (
    Job.id,
    Job.current_attempt_id,
    Job.lost_attempts,
    Job.max_attempts,
    Job.queue,
    Job.priority,
    Job.cancel_requested,
)


def lose(s, row, code: str, message: str, now: datetime, *guard) -> str | None:
    """Mark the attempt of ``row`` (a :data:`COLUMNS` row) lost and move its job on.

    The job goes back to ``queued`` while attempts remain, else to ``failed`` (or to
    ``cancelled`` when a cancel was asked for). ``guard`` adds conditions that must still
    hold on the job row. Returns the job's new state; None when the row had moved on.
    """
    job_id, attempt_id, lost, max_attempts, _queue, _priority, cancel = row
    state, job_code, job_message = _next_state(s, job_id, lost, max_attempts, cancel, code, message)
    values = {
        "state": state,
        "lost_attempts": Job.lost_attempts + 1,
        "worker": None,
        "lease_expires_at": None,
        "updated_at": now,
        "error_code": job_code,
        "error_message": job_message,
    }
    if state != "queued":
        values["finished_at"] = now
    done = s.execute(
        update(Job)
        .where(
            Job.id == job_id, Job.state == "running", Job.current_attempt_id == attempt_id, *guard
        )
        .values(**values)
    ).rowcount
    if not done:
        return None
    s.execute(
        update(Attempt)
        .where(Attempt.id == attempt_id)
        .values(state="lost", ended_at=now, error_code=code, error_message=message)
    )
    record_lost(s, job_id, attempt_id, code, message, now)
    if state == "queued":
        after = {"after": "lost"}
        events.append(s, job_id, events.REQUEUED, attempt_id=attempt_id, data=after, at=now)
    else:
        ended = {"state": state, "error_code": job_code, "error_message": job_message}
        events.append(s, job_id, events.FINISHED, attempt_id=attempt_id, data=ended, at=now)
    return state


def record_lost(s, job_id: str, attempt_id: int, code: str, message: str, now) -> None:
    """The ``lease_lost`` event of an attempt found lost (by any of the three)."""
    data = {"code": code, "message": message}
    events.append(s, job_id, events.LEASE_LOST, attempt_id=attempt_id, data=data, at=now)


def expired(s, now: datetime, job_id: str | None = None) -> list:
    """:data:`COLUMNS` of running jobs whose lease has run out (of one job, if given)."""
    q = select(*COLUMNS).where(Job.state == "running", Job.lease_expires_at < now)
    if job_id is not None:
        q = q.where(Job.id == job_id)
    return s.execute(q).all()


def held_by(s, worker: str) -> list:
    """:data:`COLUMNS` of the running jobs whose current attempt is ``worker``'s."""
    return s.execute(select(*COLUMNS).where(Job.state == "running", Job.worker == worker)).all()


def _next_state(
    s, job_id: str, lost: int, max_attempts: int, cancel: bool, code: str, message: str
) -> tuple[str, str | None, str | None]:
    if cancel:
        return "cancelled", None, None
    if lost + 1 < max_attempts:
        return "queued", None, None
    codes = s.scalars(
        select(Attempt.error_code).where(Attempt.job_id == job_id, Attempt.state == "lost")
    ).all() + [code]
    if all(c == OUT_OF_MEMORY for c in codes):
        return (
            "failed",
            OUT_OF_MEMORY,
            (
                f"the job ran out of memory on every attempt ({len(codes)} of "
                f"max_attempts={max_attempts}); the last one: {message}. Give it less to hold "
                "(a smaller batch_size or model) or run it on workers with more memory"
            ),
        )
    return (
        "failed",
        "max_attempts_exceeded",
        (
            f"the job's worker was lost {lost + 1} times (max_attempts={max_attempts}); "
            f"the last one: {message}"
        ),
    )
