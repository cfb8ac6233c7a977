"""Job events: the append-only timeline of what happened to a job, and its cursor reads.

Each event is appended by :func:`append` inside the transaction of the change it describes
(a claim, a release, a lost lease, a checkpoint's commit), so the timeline never disagrees
with the job row: either both happened or neither. Appending takes the job row's lock, so a
job's events get ids in the order they commit, and a reader polling with ``after`` (the
last id it saw) never skips one. Events of the worker's own (restored, first batch) go in a
short transaction of their own.

Types and their ``data``:

- ``submitted`` {name, queue, priority, max_attempts}
- ``queued`` {reason} (why it waits, when a scheduler says; None otherwise)
- ``claimed`` {worker, host, gpus}
- ``restored`` {step, checkpoint, bytes, fetch_seconds, load_seconds}
- ``checkpoint_skipped`` {step, checkpoint, reason} (damaged: skipped for the one before)
- ``first_batch`` {step, seconds} (seconds from the claim to the end of the first batch)
- ``checkpoint`` {step, bytes, blocked_seconds, background_seconds}
- ``lease_lost`` {code, message}
- ``preempted`` {reason} (the worker was asked to stop and give the job back)
- ``released`` {reason, step}
- ``requeued`` {after} (the attempt that ended: lost, released)
- ``validated`` {epoch, seconds} (a validation pass, for goodput)
- ``cancelled`` {while} (the owner asked; a queued job ends at once, a running one's
  worker stops at its next batch)
- ``finished`` {state, error_code, error_message} (every job that ends has one)
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select

from service.core.errors import BadRequest, NotFound
from service.store.db import session_scope
from service.store.tables import Attempt, Job, JobEvent, utcnow
from service.store.views import iso

SUBMITTED = "submitted"
QUEUED = "queued"
CLAIMED = "claimed"
RESTORED = "restored"
CHECKPOINT_SKIPPED = "checkpoint_skipped"
FIRST_BATCH = "first_batch"
CHECKPOINT = "checkpoint"
LEASE_LOST = "lease_lost"
PREEMPTED = "preempted"
RELEASED = "released"
REQUEUED = "requeued"
VALIDATED = "validated"
CANCELLED = "cancelled"
FINISHED = "finished"
TYPES = (
    SUBMITTED,
    QUEUED,
    CLAIMED,
    RESTORED,
    CHECKPOINT_SKIPPED,
    FIRST_BATCH,
    CHECKPOINT,
    LEASE_LOST,
    PREEMPTED,
    RELEASED,
    REQUEUED,
    VALIDATED,
    CANCELLED,
    FINISHED,
)
MAX_ID = 2**63 - 1  # ids are BIGINT on PostgreSQL


def append(
    s,
    job_id: str,
    type: str,
    *,
    project: str | None = None,
    attempt: int | None = None,
    attempt_id: int | None = None,
    data: dict | None = None,
    at: datetime | None = None,
) -> None:
    """In session ``s``: append one event to ``job_id``'s timeline.

    ``project`` defaults to the job's; ``attempt`` is the attempt's number, or give its
    row id as ``attempt_id``. Takes the job row's lock first (PostgreSQL), so one job's
    events commit in id order.
    """
    if type not in TYPES:
        raise ValueError(f"unknown event type {type!r}")
    job = s.execute(select(Job.project).where(Job.id == job_id).with_for_update()).first()
    if job is None:
        return
    if attempt is None and attempt_id is not None:
        attempt = s.scalar(select(Attempt.number).where(Attempt.id == attempt_id))
    s.execute(
        insert(JobEvent).values(
            job_id=job_id,
            project=project or job.project,
            attempt=attempt,
            type=type,
            at=at or utcnow(),
            data=data or {},
        )
    )


def record(url: str, job_id: str, type: str, **kwargs) -> None:
    """Append one event in a transaction of its own (events a worker sees, not a change
    of the job row: restored, first batch)."""
    with session_scope(url) as s:
        append(s, job_id, type, **kwargs)


def list_events(
    url: str,
    job_id: str,
    after: int | None = None,
    limit: int = 1000,
    project: str | None = None,
) -> dict:
    """Events with id > ``after``, oldest first: ``{"events": [...], "next": cursor}``.

    ``next`` is the ``after`` of the next poll. NotFound if there is no such job or it
    belongs to another ``project`` (None sees every project).
    """
    after = cursor(after, "an event id", job_id)
    with session_scope(url) as s:
        owned(s, job_id, project)
        rows = s.scalars(
            select(JobEvent)
            .where(JobEvent.job_id == job_id, JobEvent.id > after)
            .order_by(JobEvent.id)
            .limit(limit)
        ).all()
        out = [event_view(e) for e in rows]
    return {"events": out, "next": out[-1]["id"] if out else after}


def job_events(s, job_id: str) -> list[dict]:
    """In session ``s``: every event of the job, oldest first (for goodput)."""
    rows = s.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id))
    return [event_view(e) for e in rows]


def event_view(e: JobEvent) -> dict:
    return {
        "id": e.id,
        "type": e.type,
        "at": iso(e.at),
        "attempt": e.attempt,
        "data": e.data or {},
    }


def cursor(after: int | None, what: str, job_id: str) -> int:
    """A read's ``after`` checked (BadRequest naming it) and ``job_id`` checked to look like
    one (NotFound otherwise); returns the cursor, 0 for none."""
    from service.store.jobs import is_job_id

    if after is not None and not 0 <= after <= MAX_ID:
        raise BadRequest(f"after must be {what} from 0 to {MAX_ID}", details={"parameter": "after"})
    if not is_job_id(job_id):
        raise NotFound(f"no job with id {job_id!r}")
    return after or 0


def owned(s, job_id: str, project: str | None) -> None:
    """NotFound unless the job exists and belongs to ``project`` (None: any project)."""
    owner = s.scalar(select(Job.project).where(Job.id == job_id))
    if owner is None or (project is not None and owner != project):
        raise NotFound(f"no job with id {job_id!r}")
