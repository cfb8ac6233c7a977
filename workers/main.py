"""Starts worker processes: one solo Celery worker per process, one job per process.

``concurrency=N`` runs N such processes (one per GPU, each seeing only its own) under a
supervising parent (``workers.supervisor``), so a SIGKILL or an out-of-memory kill takes
down one job, which is handed back at once, the process is replaced, and SIGTERM reaches
every job.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess

log = logging.getLogger("fitfleet.worker")


def run_worker(
    settings, queues: list[str] | None = None, concurrency: int = 1, hostname: str | None = None
) -> int:
    """Serve ``queues`` until stopped; returns an exit status."""
    queues = queues or ["default"]
    hostname = hostname or f"fitfleet@{socket.gethostname()}"
    if concurrency > 1:
        from workers.supervisor import Supervisor

        return Supervisor(settings, queues, concurrency, hostname, _gpu_ids()).run()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("FITFLEET_WORKER_NAME", hostname)
    from workers import telemetry
    from workers.celery_app import app

    telemetry.serve(settings.worker_metrics_port)
    argv = [
        "worker",
        "--pool",
        "solo",
        "--queues",
        ",".join(queues),
        "--hostname",
        hostname,
        "--loglevel",
        settings.log_level,
        "--task-events",
        "--without-gossip",
        "--without-mingle",
    ]
    app.worker_main(argv)
    return 0


def _gpu_ids() -> list[str]:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g for g in visible.split(",") if g.strip()]
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        return [line.strip() for line in out.splitlines() if line.strip()]
    except (OSError, subprocess.SubprocessError):
        return []
