"""A worker process's own row in the ``workers`` table: idle, busy with a job, or stopped.

Connected to Celery's signals: the row is written when the worker is ready, every few
seconds from a thread, when a task starts and ends, and once more at shutdown. A failed
write is logged and retried at the next beat; it never stops the worker.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Mapping

from celery.signals import task_postrun, task_prerun, worker_ready, worker_shutdown

from service.core.config import get_settings
from service.core.dispatch import TRAIN_TASK
from service.store.fleet import FleetStore

log = logging.getLogger("fitfleet.worker")


def process_name(
    pid: int | None = None, env: Mapping[str, str] | None = None, default: str | None = None
) -> str:
    """The name a worker process's attempts and presence row carry: ``<worker name>:<pid>``.

    The worker name is ``FITFLEET_WORKER_NAME`` (``fitfleet worker`` sets it to its Celery
    hostname), else ``default``, else the machine's host name. Without arguments it names
    this process; the parent of ``--concurrency N`` names a child by its pid, environment
    and hostname.
    """
    env = os.environ if env is None else env
    name = env.get("FITFLEET_WORKER_NAME") or default or socket.gethostname()
    return f"{name}:{os.getpid() if pid is None else pid}"


def visible_gpus() -> int:
    devices = os.environ.get("CUDA_VISIBLE_DEVICES")
    if devices is None:
        return 0
    return len([d for d in devices.split(",") if d.strip() and d.strip() != "-1"])


class Presence:
    """Reports this process every ``interval`` seconds from a daemon thread.

    Example:
        p = Presence(FleetStore(url), ["default"], interval=2.0).start()
        p.busy(job_id); ...; p.idle(); p.stop()
    """

    def __init__(self, store: FleetStore, queues: list[str], interval: float):
        self.store, self.queues, self.interval = store, list(queues), interval
        self.name = process_name()
        self.state, self.job_id = "idle", None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="presence", daemon=True)

    def start(self) -> Presence:
        self.report()
        self._thread.start()
        return self

    def busy(self, job_id: str) -> None:
        with self._lock:
            self.state, self.job_id = "busy", job_id
        self.report()

    def idle(self) -> None:
        with self._lock:
            self.state, self.job_id = "idle", None
        self.report()

    def stop(self) -> None:
        """Stop the thread and record the process as stopped."""
        self._stop.set()
        with self._lock:
            self.state, self.job_id = "stopped", None
        self.report()

    def report(self) -> None:
        with self._lock:
            state, job_id = self.state, self.job_id
        try:
            self.store.report(
                self.name,
                hostname=socket.gethostname(),
                pid=os.getpid(),
                queues=self.queues,
                state=state,
                job_id=job_id,
                gpus=visible_gpus(),
            )
        except Exception as exc:  # noqa: BLE001 - the database is away: retry at the next beat
            log.warning("worker presence not recorded (%s); retrying", exc)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            if not self._stop.is_set():
                self.report()


_current: Presence | None = None


@worker_ready.connect
def _on_ready(sender=None, **_kwargs) -> None:
    global _current
    settings = get_settings()
    _current = Presence(
        FleetStore(settings.database_url), _queues(sender), settings.heartbeat_seconds
    ).start()


@task_prerun.connect
def _on_task_start(task=None, args=None, **_kwargs) -> None:
    if _current is not None and args and getattr(task, "name", None) == TRAIN_TASK:
        _current.busy(str(args[0]))


def claimed(job_id: str) -> None:
    """Record that this process now trains ``job_id`` (the job the scheduler gave it,
    which need not be the one its message named)."""
    if _current is not None:
        _current.busy(job_id)


@task_postrun.connect
def _on_task_end(**_kwargs) -> None:
    if _current is not None:
        _current.idle()


@worker_shutdown.connect
def _on_shutdown(**_kwargs) -> None:
    if _current is not None:
        _current.stop()


def _queues(consumer) -> list[str]:
    try:
        return sorted(q.name for q in consumer.task_consumer.queues)
    except AttributeError:
        return ["default"]
