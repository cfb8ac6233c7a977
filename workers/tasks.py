"""The training task: a thin shell that claims a job and runs one attempt.

The message carries a job id, but it is a wake-up for that job's queue: the worker asks
the scheduler (:mod:`service.store.scheduler`) for the most deserving claimable job of the
queue, which may be another one, and trains that. A message that finds nothing claimable
does nothing; no job can be claimed twice. When the attempt ends or gives its job back,
the worker wakes its queue, so that a job a quota held back starts on the freed slot.
SIGTERM (spot preemption, a deploy, a drain) makes the attempt checkpoint now and hand the
job back, then the worker shuts down; the scheduler's request to give way to a job of
higher priority takes the same path but leaves the worker running.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

from service.core import logs
from service.core.config import get_settings
from service.core.dispatch import TRAIN_TASK
from service.ops.reaper import wake_queue
from service.store.gangs import GangStore
from service.store.scheduler import Scheduler
from service.sweeps import controller
from workers import gang, presence, telemetry
from workers.celery_app import app
from workers.presence import process_name
from workers.training import devices
from workers.training.attempt import Attempt  # TensorFlow loads at worker start, not per job

devices.configure(get_settings().cpu_devices)

log = logging.getLogger("fitfleet.worker")


@app.task(name=TRAIN_TASK, acks_late=True, ignore_result=True)
def train(job_id: str) -> str:
    """Claim ``job_id`` and train one attempt; returns the outcome."""
    settings = get_settings()
    spec = GangStore(settings.database_url).spec_of(job_id)
    if spec is not None and gang.is_gang_job(spec):  # several workers train it together
        return _gang(job_id, spec, settings)
    scheduler = Scheduler(settings.database_url)
    queue = scheduler.queue_of(job_id)
    if queue is None:
        log.info("job %s: no such job; skipping", job_id)
        return "skipped"
    claim = scheduler.claim_next(
        queue, process_name(), settings.lease_seconds, presence.visible_gpus()
    )
    if claim is None:
        log.info("queue %s: no claimable job (woken by job %s's message)", queue, job_id)
        return "skipped"
    presence.claimed(claim.job_id)
    preempted = threading.Event()
    previous = _trap_sigterm(preempted)
    outcome = "internal_error"
    try:
        with logs.bound(claim.job_id, claim.number):  # every log line names the job
            telemetry.attempt_started()
            try:
                outcome = Attempt(claim, settings, preempted).run()
                _next_trial(settings, claim.job_id, outcome)
                return outcome
            finally:
                telemetry.attempt_ended(outcome)
    finally:
        if outcome != "preempted":  # a job given back sent its own message already
            _wake(settings, queue)
        _restore_sigterm(previous, preempted)


def _wake(settings, queue: str) -> None:
    try:
        wake_queue(settings, queue, presence.visible_gpus())
    except Exception as exc:  # noqa: BLE001 - the reaper wakes idle queues too
        log.warning("queue %s: wake-up not sent (%s); the reaper will send it", queue, exc)


def _next_trial(settings, job_id: str, outcome: str) -> None:
    """A trial that ended frees a slot of its sweep: ask for the next trial now (the
    reaper's pass does it too, should this process die first)."""
    if outcome not in ("succeeded", "failed", "cancelled"):
        return
    try:
        controller.on_job_ended(settings, job_id)
    except Exception:
        log.exception("job %s: could not advance its sweep", job_id)


def _gang(job_id: str, spec: dict, settings) -> str:
    preempted = threading.Event()
    previous = _trap_sigterm(preempted)
    try:
        with logs.bound(job_id):
            return gang.run(job_id, spec, settings, preempted)
    finally:
        _restore_sigterm(previous, preempted)


def _trap_sigterm(preempted: threading.Event):
    if threading.current_thread() is not threading.main_thread():
        return None

    def on_term(signum, frame):
        log.warning("SIGTERM: checkpointing the running job and handing it back")
        preempted.set()

    return signal.signal(signal.SIGTERM, on_term)


def _restore_sigterm(previous, preempted: threading.Event) -> None:
    if previous is None:
        return
    signal.signal(signal.SIGTERM, previous)
    if preempted.is_set():
        # Let Celery's own handler shut the worker down now that the job is safe.
        os.kill(os.getpid(), signal.SIGTERM)
