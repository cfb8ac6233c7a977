"""The parent of ``fitfleet worker --concurrency N``: starts N workers and keeps N running.

Each child is one solo Celery worker (one job at a time, one GPU). When a child dies the
parent does not wait for the lease: it counts the attempt the child held as lost at once
(the job's row names the child as ``<name>:<pid>``), sends the job to the queue again so
a warm sibling resumes it from its last checkpoint, and starts a replacement (once the job
trains again, when an idle worker is there to take it: the replacement's start-up costs
seconds of CPU that the restore needs more). A child that
the kernel's out-of-memory killer took is reported as ``resource_exhausted`` with the
cgroup's memory limit. The lease remains for the death of the whole machine.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from service.core.dispatch import enqueue, warm
from service.store.db import get_engine
from service.store.fleet import FleetStore
from service.store.jobs import JobStore
from workers import oom
from workers.presence import process_name

log = logging.getLogger("fitfleet.worker")
POLL_SECONDS = 0.2
STEADY_SECONDS = 30.0  # a child that lived this long died of its job, not of its start
MAX_BACKOFF_SECONDS = 30.0
HANDOFF_SECONDS = 10.0  # the longest a replacement waits for the released job to train again


@dataclass
class Slot:
    """One of the N places: its Celery hostname, environment and current process."""

    index: int
    name: str
    env: dict
    proc: subprocess.Popen | None = None
    started: float = 0.0
    quick_deaths: int = 0
    restart_at: float = 0.0
    handing_off: list[str] = field(default_factory=list)  # released, not training again yet


class Supervisor:
    """Runs ``concurrency`` children until SIGTERM or SIGINT, replacing those that die.

    Example:
        Supervisor(settings, ["default"], 2, "fitfleet@host").run()
    """

    def __init__(
        self,
        settings,
        queues: list[str],
        concurrency: int,
        hostname: str,
        gpus: list[str] | None = None,
    ):
        self.settings, self.queues = settings, list(queues)
        self.slots = [
            Slot(i, f"{hostname}-{i}", self._env(i, gpus or [])) for i in range(concurrency)
        ]
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self.oom_seen = oom.oom_kills(settings.cgroup_root)
        self.codes: list[int] = []

    def run(self) -> int:
        """Serve until stopped; returns the worst exit status of the last children."""
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        signal.signal(signal.SIGCHLD, lambda *_: self.wake.set())  # a child ended: look now
        for slot in self.slots:
            self._start(slot)
        self._warm()
        while True:
            self.wake.clear()
            for slot in self.slots:
                self._check(slot)
            if self.stopping.is_set() and all(s.proc is None for s in self.slots):
                return max(self.codes, default=0)
            self.wake.wait(POLL_SECONDS)

    def _warm(self) -> None:
        """Connect to the database and the broker now: a death is handled in milliseconds."""
        try:
            get_engine(self.settings.database_url).connect().close()
            warm(self.settings.broker_url, self.settings.home)
        except Exception:  # they may come up later; the first death connects
            log.warning("the database or the broker is not reachable yet", exc_info=True)

    def _env(self, index: int, gpus: list[str]) -> dict:
        env = dict(os.environ)
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[index % len(gpus)]
        if self.settings.worker_metrics_port:  # one port per process: P, P+1, ...
            env["FITFLEET_WORKER_METRICS_PORT"] = str(self.settings.worker_metrics_port + index)
        return env

    def command(self, slot: Slot) -> list[str]:
        """The command line of the child in ``slot``: a solo worker on the same queues."""
        return [
            sys.executable,
            "-m",
            "fitfleet",
            "worker",
            "--queues",
            ",".join(self.queues),
            "--hostname",
            slot.name,
        ]

    def _start(self, slot: Slot) -> None:
        slot.proc = subprocess.Popen(self.command(slot), env=slot.env)
        slot.started = time.monotonic()
        log.info("worker process %s started (pid %d)", slot.name, slot.proc.pid)

    def _check(self, slot: Slot) -> None:
        if slot.proc is None:
            self._restart_when_due(slot)
            return
        code = slot.proc.poll()
        if code is None:
            return
        pid, slot.proc = slot.proc.pid, None
        if self.stopping.is_set():
            self.codes.append(code)
        released = self._release(process_name(pid, slot.env, slot.name), code)
        if self.stopping.is_set():
            return
        slot.handing_off = released if released and self._idle_worker() else []
        lived = time.monotonic() - slot.started
        slot.quick_deaths = 0 if lived >= STEADY_SECONDS else slot.quick_deaths + 1
        delay = min(MAX_BACKOFF_SECONDS, 2.0**slot.quick_deaths - 1)
        slot.restart_at = time.monotonic() + delay
        log.warning(
            "worker process %s (pid %d) %s; replacing it in %.0fs%s",
            slot.name,
            pid,
            _death(code),
            delay,
            " once its job trains again (an idle worker is up)" if slot.handing_off else "",
        )

    def _restart_when_due(self, slot: Slot) -> None:
        now = time.monotonic()
        if self.stopping.is_set() or now < slot.restart_at:
            return
        if slot.handing_off and now < slot.restart_at + HANDOFF_SECONDS:
            slot.handing_off = self._not_training_yet(slot.handing_off)
            if slot.handing_off:
                return  # a warm worker is taking it: leave it the CPU
        slot.handing_off = []
        self._start(slot)

    def _release(self, worker: str, code: int) -> list[str]:
        """Count the job ``worker`` held as a lost attempt and send it to the queue again.

        Returns the ids of the jobs sent again.
        """
        error, message = self._diagnose(code)
        try:
            requeue, failed = JobStore(self.settings.database_url).release_lost(
                worker, error, message
            )
        except Exception:  # the database is away: the lease will do it
            log.exception("could not release the job of %s; its lease will", worker)
            return []
        sent = []
        for job in requeue:
            try:
                enqueue(
                    self.settings.broker_url,
                    self.settings.home,
                    job["id"],
                    job["queue"],
                    job["priority"],
                )
                log.warning("job %s handed back at once: %s", job["id"], message)
                sent.append(job["id"])
            except Exception:  # queued and unsent: the reaper re-sends it
                log.exception("could not requeue job %s; it stays queued", job["id"])
        for job_id in failed:
            log.warning("job %s failed: out of attempts (%s)", job_id, message)
        return sent

    def _idle_worker(self) -> bool:
        """Whether a live idle worker (of any machine) serves one of these queues."""
        stale = max(5.0, 3 * self.settings.heartbeat_seconds)
        try:
            workers = FleetStore(self.settings.database_url).workers(stale, False)
        except Exception:  # noqa: BLE001 - the database is away: start the replacement now
            return False
        return any(w["state"] == "idle" and set(w["queues"]) & set(self.queues) for w in workers)

    def _not_training_yet(self, job_ids: list[str]) -> list[str]:
        """The jobs of ``job_ids`` that no worker trains again yet (queued, or restoring)."""
        store = JobStore(self.settings.database_url)
        try:
            latest = [(j, store.attempts(j)[-1]) for j in job_ids]
        except Exception:  # noqa: BLE001 - the database is away: wait no longer
            return []
        return [
            j
            for j, a in latest
            if a["state"] == "lost"
            or (a["state"] == "running" and a["last_step"] <= a["resumed_from_step"])
        ]

    def _diagnose(self, code: int) -> tuple[str, str]:
        """(error code, safe message) for a child that ended with ``code``."""
        kills = oom.oom_kills(self.settings.cgroup_root)
        struck = kills is not None and self.oom_seen is not None and kills > self.oom_seen
        self.oom_seen = kills if kills is not None else self.oom_seen
        if code == -signal.SIGKILL and struck:
            limit = oom.describe(oom.memory_limit(self.settings.cgroup_root))
            return "resource_exhausted", (
                f"the worker process was killed by the kernel's out-of-memory killer ({limit})"
            )
        return "worker_died", f"the worker process {_death(code)}"

    def _stop(self, signum, _frame) -> None:
        self.stopping.set()
        self.wake.set()
        for slot in self.slots:
            if slot.proc is not None and slot.proc.poll() is None:
                slot.proc.send_signal(signum)


def _death(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"
