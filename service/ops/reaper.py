"""The lease reaper: notices dead workers in seconds and hands their jobs back to the queue.

It also sends again the message of a job whose gang is forming when its queue holds no
message, and of a job that waited queued, unclaimed, longer than
``redispatch_seconds``: a broker that restarted without persistence loses its messages,
and a duplicate is harmless (the claim lets only one delivery train).

Celery on Redis would redeliver an unacknowledged message only after its visibility
timeout (an hour by default). The reaper instead sweeps the ``jobs`` table every few
seconds: a running job whose lease expired has lost its worker, so its attempt is marked
``lost`` and the job is re-enqueued (or failed once ``max_attempts`` is used up). A claim
that takes over an expired lease first, and a worker parent whose child died, count the
lost attempt the same way (``service.store.lost``). Beside its sweeps, a thread of its
own delivers webhooks (``service.ops.webhooks``).

Each sweep also runs the scheduler's two passes (:mod:`service.store.scheduler`): it asks
running jobs to give way to queued jobs of higher priority (preemption), and it wakes a
queue whose idle worker could start a job but has no message to wake it (a wake-up that
a quota made useless was dropped; a duplicate is harmless). Several reapers may run at
once: each decision is one serialized transaction.
"""

from __future__ import annotations

import logging
import threading

from service.core.config import Settings
from service.core.dispatch import enqueue, wake
from service.ops import broker
from service.store.gangs import GangStore
from service.store.jobs import JobStore
from service.store.scheduler import Scheduler
from service.sweeps import controller

log = logging.getLogger("fitfleet.reaper")


def sweep(settings: Settings) -> tuple[list[str], list[str]]:
    """One pass: returns (requeued job ids, failed job ids)."""
    store = JobStore(settings.database_url)
    requeue, failed = store.reap()
    gangs = GangStore(settings.database_url)
    requeue += gangs.reap(settings.lease_seconds, settings.gang_form_seconds)
    requeue += _forming_gangs(settings, gangs)
    requeue += _lost_messages(settings, store)
    sent = []
    for job in requeue:
        try:
            enqueue(settings.broker_url, settings.home, job["id"], job["queue"], job["priority"])
            sent.append(job["id"])
            why = job.get("why", "its worker stopped renewing the lease")
            log.info("requeued job %s: %s", job["id"], why)
        except Exception:
            log.exception("could not requeue job %s; it stays queued", job["id"])
    for job_id in failed:
        log.warning("job %s failed: out of attempts", job_id)
    try:
        preempt(settings)
        wake_idle(settings)
    except Exception:
        log.exception("scheduling pass failed; retrying at the next sweep")
    return sent, failed


def stale_after(settings: Settings) -> float:
    """Seconds after which a worker that stopped reporting is not counted as live."""
    return max(settings.lease_seconds, 3 * settings.heartbeat_seconds)


def preempt(settings: Settings) -> list[dict]:
    """Ask running jobs to give way to queued jobs that outrank them; returns those asked."""
    return Scheduler(settings.database_url).preempt(
        min_seconds=settings.preempt_min_seconds,
        cooldown_seconds=settings.preempt_cooldown_seconds,
        stale_after=stale_after(settings),
        fair_share=settings.fair_share_preemption.strip().lower() == "on",
    )


def wake_queue(settings: Settings, queue: str, gpus: int = 0) -> bool:
    """After a worker's slot freed: send a wake-up for ``queue`` if it holds a job that can
    start and fewer messages than queued jobs (one a quota made useless was dropped)."""
    job = Scheduler(settings.database_url).next_claimable(queue, gpus)
    if job is None:
        return False
    depth = broker_depth(settings, queue)
    queued = JobStore(settings.database_url).queued_counts().get(queue, 0)
    if depth is not None and depth >= queued:
        return False  # every queued job still has a message to wake a worker
    wake(settings.broker_url, settings.home, job["id"], queue, job["priority"])
    return True


def wake_idle(settings: Settings) -> list[str]:
    """Wake each queue that has an idle worker, a claimable job and no message waiting."""
    woken = []
    for q in Scheduler(settings.database_url).idle_queues(stale_after(settings)):
        if broker_depth(settings, q["queue"]) != 0:
            continue  # a message is on its way (or the depth is unknown: send nothing)
        wake(settings.broker_url, settings.home, q["id"], q["queue"], q["priority"])
        log.info("woke queue %s: job %s can start on an idle worker", q["queue"], q["id"])
        woken.append(q["queue"])
    return woken


def _lost_messages(settings: Settings, store: JobStore) -> list[dict]:
    """Stale queued jobs of the queues whose broker holds fewer messages than waiting jobs."""
    stale = store.stale_queued(settings.redispatch_seconds)
    if not stale:
        return []
    waiting = store.queued_counts()
    out = []
    for queue in {job["queue"] for job in stale}:
        depth = broker_depth(settings, queue)
        if depth is not None and depth >= waiting.get(queue, 0):
            continue  # every waiting job still has its message
        out += [job for job in stale if job["queue"] == queue]
    return out


def _forming_gangs(settings: Settings, gangs: GangStore) -> list[dict]:
    """Forming gangs of queues that hold no message: one more message each, so a free
    worker hears of the gang (the one sent for the next member may sit reserved by a busy
    worker)."""
    forming = gangs.forming(settings.reaper_interval)
    out = []
    for queue in {job["queue"] for job in forming}:
        if broker_depth(settings, queue) == 0:
            out += [
                {**job, "why": "its gang is forming and its queue is empty"}
                for job in forming
                if job["queue"] == queue
            ]
    return out


def broker_depth(settings: Settings, queue: str) -> int | None:
    """Messages waiting in ``queue`` (all priorities), or None if the broker cannot say."""
    try:
        depths = broker.queue_depths(settings.broker_url, settings.home, [queue])
    except Exception:  # noqa: BLE001 - unknown depth: the caller redispatches nothing
        log.warning("could not read the depth of queue %s", queue)
        return None
    return None if depths is None else depths[queue]


def run(settings: Settings, stop: threading.Event | None = None) -> None:
    """Sweep every ``reaper_interval`` seconds until ``stop`` is set."""
    from service.ops import webhooks
    from service.store.retention import Schedule

    stop = stop or threading.Event()
    retention = Schedule(settings)  # FITFLEET_RETENTION_INTERVAL; 0: off
    webhooks.start(settings, stop)  # the webhook outbox, drained beside the sweeps
    log.info(
        "reaper started: lease %.1fs, sweep every %.1fs",
        settings.lease_seconds,
        settings.reaper_interval,
    )
    while not stop.is_set():
        try:
            sweep(settings)
        except Exception:
            log.exception("reaper sweep failed; retrying")
        controller.advance_all(settings)  # sweeps: trials for free slots, ended trials settled
        retention.tick()
        stop.wait(settings.reaper_interval)
