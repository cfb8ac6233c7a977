"""A stand-in worker for fleet-scale scheduling tests and benchmarks: no TensorFlow.

A real Celery worker (solo pool, late acks, prefetch 1: fitfleet's settings) whose train
task, under its real name, does what ``workers.tasks.train`` does around training: it asks
the scheduler for the queue's most deserving job (``Scheduler.claim_next``), renews the
lease (and learns of a preemption) every ``RENEW`` seconds for the job's
``spec["standin_seconds"]`` of "training", then finishes it, or gives it back when asked
to give way, and wakes its queue as a real worker does. It reports its presence through
``workers.presence`` like a real worker.

Usage (one process per worker; the environment is a stack's):
    python testbed/standin.py NAME@HOST QUEUES
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RENEW = 0.2


def serve(hostname: str, queues: str) -> None:
    from celery import Celery

    from service.core.celery_config import celery_config
    from service.core.config import get_settings
    from service.core.dispatch import TRAIN_TASK, enqueue
    from service.ops.reaper import wake_queue
    from service.store.jobs import JobStore
    from service.store.scheduler import Scheduler
    from workers import presence  # the presence rows, on Celery's signals

    settings = get_settings()
    app = Celery("fitfleet-standin", broker=settings.broker_url)
    app.conf.update(celery_config(settings.broker_url, settings.home))
    jobs, scheduler = JobStore(settings.database_url), Scheduler(settings.database_url)

    @app.task(name=TRAIN_TASK, acks_late=True, ignore_result=True)
    def train(job_id: str) -> str:
        queue = scheduler.queue_of(job_id)
        if queue is None:
            return "skipped"
        name = presence.process_name()
        claim = scheduler.claim_next(queue, name, settings.lease_seconds)
        if claim is None:
            return "skipped"
        presence.claimed(claim.job_id)
        seconds = float(claim.spec.get("standin_seconds", 1.0))
        deadline, step = time.monotonic() + seconds, 0
        while time.monotonic() < deadline:
            time.sleep(min(RENEW, max(0.0, deadline - time.monotonic())))
            step += 1
            answer = jobs.renew_lease(
                claim.job_id, claim.attempt_id, settings.lease_seconds, {"step": step}
            )
            if answer.preempt:
                if jobs.release(claim.job_id, claim.attempt_id, "a job of higher priority"):
                    enqueue(
                        settings.broker_url,
                        settings.home,
                        claim.job_id,
                        queue,
                        int(claim.spec.get("priority", 0)),
                    )
                return "preempted"
        jobs.finish(claim.job_id, claim.attempt_id, "succeeded")
        wake_queue(settings, queue)
        return "succeeded"

    app.worker_main(
        [
            "worker",
            "--pool",
            "solo",
            "--queues",
            queues,
            "--hostname",
            hostname,
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
        ]
    )


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2])
