"""The lease reaper: notices dead workers in seconds and hands their jobs back to the queue.

Celery on Redis would redeliver an unacknowledged message only after its visibility
timeout (an hour by default). The reaper instead sweeps the ``jobs`` table every few
seconds: a running job whose lease expired has lost its worker, so its attempt is marked
``lost`` and the job is re-enqueued (or failed once ``max_attempts`` is used up).
"""

from __future__ import annotations

import logging
import threading

from service.config import Settings
from service.dispatch import enqueue
from service.jobs import JobStore

log = logging.getLogger("fitfleet.reaper")


def sweep(settings: Settings) -> tuple[list[str], list[str]]:
    """One pass: returns (requeued job ids, failed job ids)."""
    requeue, failed = JobStore(settings.database_url).reap()
    sent = []
    for job in requeue:
        try:
            enqueue(settings.broker_url, settings.home, job["id"], job["queue"], job["priority"])
            sent.append(job["id"])
            log.info("requeued job %s: its worker stopped renewing the lease", job["id"])
        except Exception:
            log.exception("could not requeue job %s; it stays queued", job["id"])
    for job_id in failed:
        log.warning("job %s failed: out of attempts", job_id)
    return sent, failed


def run(settings: Settings, stop: threading.Event | None = None) -> None:
    """Sweep every ``reaper_interval`` seconds until ``stop`` is set."""
    from service.retention import Schedule

    stop = stop or threading.Event()
    retention = Schedule(settings)  # FITFLEET_RETENTION_INTERVAL; 0: off
    log.info("reaper started: lease %.1fs, sweep every %.1fs",
             settings.lease_seconds, settings.reaper_interval)
    while not stop.is_set():
        try:
            sweep(settings)
        except Exception:
            log.exception("reaper sweep failed; retrying")
        retention.tick()
        stop.wait(settings.reaper_interval)
