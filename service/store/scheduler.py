"""The scheduler: which job a free worker takes, which running job gives way, why a job waits.

Celery carries the work; the database decides who runs. A message in a queue is a wake-up
for that queue, not an order to run the job it names: the worker that receives one calls
:meth:`Scheduler.claim_next`, which, in ONE transaction, picks the most deserving
claimable job of the queue and claims it with the same guarded UPDATE as before:

1. the highest ``priority`` first;
2. among equal priorities, the project furthest below its weighted share of the queue's
   running capacity: the lowest ``running jobs of the project in the queue / weight``
   (a project's share of the capacity is ``capacity * weight / sum of weights``, so this
   ratio orders the projects as their distance below that share does, whatever the
   capacity);
3. then the oldest job (``created_at``; a preempted job keeps its own, so its place).

A project at a quota (``max_running`` running jobs, or ``max_gpus`` GPUs in use counting
the claiming worker's) is skipped: its jobs wait. Why this mechanism rather than a
dispatcher that sends one message per free worker: it needs no process of its own to be
up for jobs to start, and a duplicate or stray message is harmless, since a message that
finds nothing claimable is dropped and no job can be claimed twice (the UPDATE is guarded
by ``state = 'queued'``). Each job still sends its own message at submit, so there are
as many wake-ups as jobs; the ones a quota made useless are replaced when a slot frees:
a worker that ends or gives back an attempt wakes its queue, and the reaper wakes a queue
that has an idle worker, a claimable job and no message (:func:`idle_queues`).

Decisions are serialized so that quotas hold with many workers, reapers and schedulers at
once: on PostgreSQL a transaction-scoped advisory lock (``pg_advisory_xact_lock``), on
SQLite the database's single writer lock, taken by the transaction's first statement.
Every count is read after the lock is held, and the claim's timestamps are taken after
the counts, so the attempts table itself shows that no quota was ever exceeded.

Preemption (:meth:`Scheduler.preempt`, run by the reaper every sweep and by the API right
after a submit): a queued job that cannot start because every live worker of its queue
is busy, with a job of lower priority on at least one of them, asks the lowest-priority
such job (the most recently started among equals) to give way, through the database as
cancel does (``preempt_requested``). Its worker's next lease renewal sees the flag and
takes the SIGTERM path (checkpoint now, release, requeue) without stopping the worker
process, which then takes the waiting job. A victim must have run its current attempt
for at least ``FITFLEET_PREEMPT_MIN_SECONDS`` and not been asked within
``FITFLEET_PREEMPT_COOLDOWN_SECONDS`` (the thrash guard). With
``FITFLEET_FAIR_SHARE_PREEMPTION=on`` a project below its weighted share may also preempt
a job of equal priority of the project furthest above its share.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select, text, update

from service.store import lost
from service.store.db import session_scope
from service.store.leases import Claim, take
from service.store.projects import Limits, limits_of
from service.store.tables import Attempt, Job, Worker, utcnow

log = logging.getLogger("fitfleet.scheduler")

LOCK_KEY = 0x66_66_6C_74  # "fflt": the advisory lock every scheduling decision takes


def serialize(s) -> None:
    """Hold the scheduling lock until the transaction of session ``s`` ends."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
    else:  # SQLite: a write statement takes the database's writer lock (busy_timeout waits)
        s.execute(update(Worker).where(text("1 = 0")).values(state=Worker.state))


@dataclass
class Usage:
    """What the fleet's running jobs hold: per project across queues, and per queue."""

    running: dict[str, int]
    gpus: dict[str, int]
    in_queue: dict[tuple[str, str], int]  # (queue, project) -> running jobs

    @classmethod
    def read(cls, s) -> Usage:
        rows = s.execute(
            select(Job.queue, Job.project, func.count(), func.coalesce(func.sum(Job.gpus), 0))
            .where(Job.state == "running")
            .group_by(Job.queue, Job.project)
        ).all()
        running: dict[str, int] = {}
        gpus: dict[str, int] = {}
        in_queue: dict[tuple[str, str], int] = {}
        for queue, project, n, g in rows:
            running[project] = running.get(project, 0) + n
            gpus[project] = gpus.get(project, 0) + int(g)
            in_queue[(queue, project)] = n
        return cls(running, gpus, in_queue)

    def quota_reason(self, project: str, lim: Limits, gpus: int = 0) -> str | None:
        """Why ``project`` may not start one more job on a worker with ``gpus``; None if it may."""
        running = self.running.get(project, 0)
        if lim.max_running is not None and running >= lim.max_running:
            return f"project {project} is at its quota of {_n(lim.max_running, 'running job')}"
        used = self.gpus.get(project, 0)
        if lim.max_gpus is not None and (used + gpus > lim.max_gpus or used >= lim.max_gpus > 0):
            return f"project {project} is at its quota of {_n(lim.max_gpus, 'GPU')} ({used} in use)"
        if lim.max_gpus == 0 and gpus > 0:
            return f"project {project} has a quota of 0 GPUs"
        return None


def _n(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def live_workers(s, now: datetime, stale_after: float) -> list[Worker]:
    """Worker rows that reported within ``stale_after`` seconds and did not stop."""
    return list(
        s.scalars(
            select(Worker).where(
                Worker.state != "stopped",
                Worker.heartbeat_at >= now - timedelta(seconds=stale_after),
            )
        )
    )


def _ratio(usage: Usage, limits: dict[str, Limits], queue: str, project: str) -> float:
    weight = limits.get(project, Limits()).weight
    return usage.in_queue.get((queue, project), 0) / weight


def choose(s, queue: str, gpus: int = 0) -> str | None:
    """The id of the most deserving claimable job of ``queue`` (see the module docstring)."""
    limits = limits_of(s)
    usage = Usage.read(s)
    heads = s.execute(
        select(Job.project, Job.priority, func.min(Job.created_at))
        .where(
            Job.state == "queued",
            Job.queue == queue,
            Job.cancel_requested.is_(False),
            Job.workers == 1,  # a multi-worker job is claimed by its gang (service.store.gangs)
        )
        .group_by(Job.project, Job.priority)
    ).all()
    candidates = [
        (-priority, _ratio(usage, limits, queue, project), oldest, project, priority)
        for project, priority, oldest in heads
        if usage.quota_reason(project, limits.get(project, Limits()), gpus) is None
    ]
    if not candidates:
        return None
    *_, project, priority = min(candidates)
    return s.scalar(
        select(Job.id)
        .where(
            Job.state == "queued",
            Job.queue == queue,
            Job.project == project,
            Job.priority == priority,
            Job.cancel_requested.is_(False),
            Job.workers == 1,
        )
        .order_by(Job.created_at, Job.id)
        .limit(1)
    )


class Scheduler:
    """Scheduling decisions on the database at ``database_url``, each one transaction."""

    def __init__(self, database_url: str):
        self.url = database_url

    def claim_next(
        self, queue: str, worker: str, lease_seconds: float, gpus: int = 0
    ) -> Claim | None:
        """Claim the most deserving claimable job of ``queue`` for ``worker``; None if none.

        A running job of the queue whose lease expired is first counted lost and requeued,
        as the reaper would (a redelivered message may arrive before the reaper's sweep).
        """
        with session_scope(self.url) as s:
            serialize(s)
            now = utcnow()
            for held in lost.expired(s, now):
                if held.queue == queue:
                    lost.lose(s, held, *lost.LEASE_EXPIRED, now, Job.lease_expires_at < now)
            job_id = choose(s, queue, gpus)
            if job_id is None:
                return None
            return take(s, job_id, worker, lease_seconds, utcnow(), gpus)

    def preempt(
        self,
        *,
        min_seconds: float,
        cooldown_seconds: float,
        stale_after: float,
        fair_share: bool = False,
    ) -> list[dict]:
        """Ask running jobs to give way to queued jobs that outrank them; returns the
        victims asked now, as ``{"id", "queue", "priority", "for"}``."""
        with session_scope(self.url) as s:
            serialize(s)
            now = utcnow()
            workers = live_workers(s, now, stale_after)
            limits = limits_of(s)
            usage = Usage.read(s)
            queues = s.scalars(
                select(Job.queue).where(Job.state == "queued").group_by(Job.queue)
            ).all()
            asked = []
            for queue in queues:
                serving = [w for w in workers if queue in (w.queues or [])]
                if not serving:
                    continue  # nobody to ask
                asked += self._preempt_queue(
                    s,
                    queue,
                    serving,
                    limits,
                    usage,
                    now,
                    min_seconds,
                    cooldown_seconds,
                    fair_share,
                )
            return asked

    @staticmethod
    def _preempt_queue(
        s, queue, serving, limits, usage, now, min_seconds, cooldown_seconds, fair_share
    ) -> list[dict]:
        names = [w.name for w in serving]
        gpus_of = {w.name: w.gpus for w in serving}
        running = s.execute(
            select(
                Job.id,
                Job.project,
                Job.priority,
                Job.queue,
                Job.worker,
                Job.preempt_requested,
                Job.cancel_requested,
                Job.last_preempted_at,
                Attempt.started_at,
            )
            .join(Attempt, Attempt.id == Job.current_attempt_id)
            .where(Job.state == "running", Job.worker.in_(names))
        ).all()
        # Slots that are free or being freed go to the best waiting jobs first: a worker
        # holding no running job (idle, or between a release and its next claim, whatever
        # its presence row says yet), and a job already asked to stop or give way.
        holding = {r.worker for r in running}
        free = sum(1 for w in serving if w.name not in holding)
        pending = free + sum(1 for r in running if r.preempt_requested or r.cancel_requested)
        eligible = [
            r
            for r in running
            if not (r.preempt_requested or r.cancel_requested)
            and r.started_at <= now - timedelta(seconds=min_seconds)
            and (
                r.last_preempted_at is None
                or r.last_preempted_at <= now - timedelta(seconds=cooldown_seconds)
            )
        ]
        waiting = s.execute(
            select(Job.id, Job.project, Job.priority)
            .where(Job.state == "queued", Job.queue == queue, Job.cancel_requested.is_(False))
            .order_by(Job.priority.desc(), Job.created_at, Job.id)
            .limit(len(serving) + pending)
        ).all()
        asked = []
        for job in waiting:
            lim = limits.get(job.project, Limits())
            if pending:  # a slot is free or being freed: it goes to the best waiting job
                pending -= 1
                continue
            victims = [r for r in eligible if r.priority < job.priority]
            if fair_share and not victims:
                victims = _over_share(eligible, job, queue, limits, usage)
            victims = [
                r
                for r in victims
                if usage.quota_reason(job.project, lim, gpus_of[r.worker]) is None
                or r.project == job.project
            ]
            if not victims:
                continue
            victim = min(victims, key=lambda r: (r.priority, -r.started_at.timestamp()))
            done = s.execute(
                update(Job)
                .where(
                    Job.id == victim.id,
                    Job.state == "running",
                    Job.preempt_requested.is_(False),
                    Job.cancel_requested.is_(False),
                    or_(
                        Job.last_preempted_at.is_(None),
                        Job.last_preempted_at <= now - timedelta(seconds=cooldown_seconds),
                    ),
                )
                .values(preempt_requested=True, last_preempted_at=now, updated_at=now)
            ).rowcount
            eligible.remove(victim)
            if done:
                log.info(
                    "job %s (priority %d, project %s) asked to give way to job %s "
                    "(priority %d, project %s)",
                    victim.id,
                    victim.priority,
                    victim.project,
                    job.id,
                    job.priority,
                    job.project,
                )
                asked.append(
                    {
                        "id": victim.id,
                        "queue": victim.queue,
                        "priority": victim.priority,
                        "for": job.id,
                    }
                )
        return asked

    def queue_of(self, job_id: str) -> str | None:
        """The queue of the job ``job_id`` (the queue its message woke); None if no such job."""
        from service.store.jobs import is_job_id

        if not is_job_id(job_id):
            return None
        with session_scope(self.url) as s:
            return s.scalar(select(Job.queue).where(Job.id == job_id))

    def next_claimable(self, queue: str, gpus: int = 0) -> dict | None:
        """``{"id", "priority"}`` of the job a claim on ``queue`` would take now, or None."""
        with session_scope(self.url) as s:
            job_id = choose(s, queue, gpus)
            if job_id is None:
                return None
            return {
                "id": job_id,
                "priority": s.scalar(select(Job.priority).where(Job.id == job_id)),
            }

    def wait_reasons(self, job_ids: list[str], stale_after: float) -> dict[str, str]:
        with session_scope(self.url) as s:
            jobs = list(s.scalars(select(Job).where(Job.id.in_(job_ids))))
            return wait_reasons(s, jobs, stale_after)

    def idle_queues(self, stale_after: float) -> list[dict]:
        """Queues with an idle live worker and a claimable queued job: ``{"queue", "id",
        "priority"}`` with that job, for the reaper to send a wake-up when none is waiting."""
        with session_scope(self.url) as s:
            now = utcnow()
            workers = live_workers(s, now, stale_after)
            idle = {q for w in workers if w.state == "idle" for q in (w.queues or [])}
            if not idle:
                return []
            out = []
            for queue in sorted(idle):
                gpus = min((w.gpus for w in workers if queue in (w.queues or [])), default=0)
                job_id = choose(s, queue, gpus)
                if job_id is not None:
                    priority = s.scalar(select(Job.priority).where(Job.id == job_id))
                    out.append({"queue": queue, "id": job_id, "priority": priority})
            return out


def _over_share(eligible, job, queue, limits, usage) -> list:
    """Running jobs of ``job``'s priority of other projects that a swap would bring closer to
    their weighted shares: after it, the waiting project's ``running / weight`` would still
    be at most the victim's project's (so the swap never needs undoing), furthest above
    first (fair-share preemption)."""
    weight = limits.get(job.project, Limits()).weight
    after = _ratio(usage, limits, queue, job.project) + 1 / weight
    out = []
    for r in eligible:
        if r.priority != job.priority or r.project == job.project:
            continue
        theirs = _ratio(usage, limits, queue, r.project)
        if after <= theirs - 1 / limits.get(r.project, Limits()).weight + 1e-9:
            out.append(r)
    return sorted(out, key=lambda r: -_ratio(usage, limits, queue, r.project))


def wait_reasons(s, jobs: list[Job], stale_after: float) -> dict[str, str]:
    """Why each queued job of ``jobs`` waits, in words (read in session ``s``)."""
    queued = [j for j in jobs if j.state == "queued"]
    if not queued:
        return {}
    now = utcnow()
    workers = live_workers(s, now, stale_after)
    limits = limits_of(s)
    usage = Usage.read(s)
    queues = sorted({j.queue for j in queued})
    counts = s.execute(
        select(Job.queue, Job.priority, func.count())
        .where(Job.state == "queued", Job.queue.in_(queues))
        .group_by(Job.queue, Job.priority)
    ).all()
    giving_way = dict(
        s.execute(
            select(Job.queue, func.count())
            .where(Job.state == "running", Job.preempt_requested.is_(True))
            .group_by(Job.queue)
        ).all()
    )
    holding = set(s.scalars(select(Job.worker).where(Job.state == "running")))
    out = {}
    for job in queued:
        serving = [w for w in workers if job.queue in (w.queues or [])]
        if job.cancel_requested:
            continue
        if not serving:
            out[job.id] = f"no worker serves queue {job.queue}"
            continue
        lim = limits.get(job.project, Limits())
        gpus = min(w.gpus for w in serving)
        if reason := usage.quota_reason(job.project, lim, gpus):
            out[job.id] = reason
            continue
        higher = sum(n for q, p, n in counts if q == job.queue and p > job.priority)
        if higher:
            out[job.id] = (
                f"{_n(higher, 'job')} of higher priority {'is' if higher == 1 else 'are'} ahead"
            )
            continue
        if giving_way.get(job.queue):
            out[job.id] = (
                f"a running job of lower priority is checkpointing to give way (queue {job.queue})"
            )
            continue
        if not any(w.state == "idle" and w.name not in holding for w in serving):
            equal = len(queued) == 1 and s.scalar(  # one job's view only: a list stays cheap
                select(func.count()).where(
                    Job.state == "queued",
                    Job.queue == job.queue,
                    Job.priority == job.priority,
                    or_(
                        Job.created_at < job.created_at,
                        and_(Job.created_at == job.created_at, Job.id < job.id),
                    ),
                )
            )
            busy = f"all {_n(len(serving), 'worker')} of queue {job.queue} are busy"
            if len(serving) == 1:
                busy = f"the one worker of queue {job.queue} is busy"
            if equal:
                busy += (
                    f"; {_n(equal, 'older job')} of equal priority "
                    f"{'is' if equal == 1 else 'are'} ahead (fair share, then age)"
                )
            out[job.id] = busy
            continue
        out[job.id] = f"a worker of queue {job.queue} is free; the job starts shortly"
    return out
