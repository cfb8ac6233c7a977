"""The training task: a thin shell that claims the job and runs one attempt.

The message carries only the job id; the job's truth is its database row. A duplicate
delivery that loses the claim does nothing. SIGTERM (preemption, a deploy, a drain)
makes the attempt checkpoint now and hand the job back, then the worker shuts down.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

from service.core import logs
from service.core.config import get_settings
from service.core.dispatch import TRAIN_TASK
from service.store.gangs import GangStore
from service.store.jobs import JobStore
from workers import gang, telemetry
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
    claim = JobStore(settings.database_url).claim(job_id, process_name(), settings.lease_seconds)
    if claim is None:
        log.info("job %s: not claimable (running elsewhere, ended or cancelled); skipping", job_id)
        return "skipped"
    preempted = threading.Event()
    previous = _trap_sigterm(preempted)
    try:
        with logs.bound(job_id, claim.number):  # every log line of the attempt names the job
            telemetry.attempt_started()
            outcome = "internal_error"
            try:
                outcome = Attempt(claim, settings, preempted).run()
                return outcome
            finally:
                telemetry.attempt_ended(outcome)
    finally:
        _restore_sigterm(previous, preempted)


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
