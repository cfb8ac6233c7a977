"""Starts worker processes: one solo Celery worker per process, one job per process.

``concurrency=N`` runs N such processes (one per GPU, each seeing only its own), so a
SIGKILL or an out-of-memory kill takes down one job, and SIGTERM reaches every job.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys

log = logging.getLogger("fitfleet.worker")


def run_worker(settings, queues: list[str] | None = None, concurrency: int = 1,
               hostname: str | None = None) -> int:
    """Serve ``queues`` until stopped; returns an exit status."""
    queues = queues or ["default"]
    hostname = hostname or f"fitfleet@{socket.gethostname()}"
    if concurrency > 1:
        return _run_many(queues, concurrency, hostname, settings.worker_metrics_port)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("FITFLEET_WORKER_NAME", hostname)
    from workers import telemetry
    from workers.celery_app import app

    telemetry.serve(settings.worker_metrics_port)
    argv = ["worker", "--pool", "solo", "--queues", ",".join(queues), "--hostname", hostname,
            "--loglevel", settings.log_level, "--task-events", "--without-gossip",
            "--without-mingle"]
    app.worker_main(argv)
    return 0


def _run_many(queues: list[str], concurrency: int, hostname: str, metrics_port: int = 0) -> int:
    gpus = _gpu_ids()
    children = []
    for i in range(concurrency):
        env = dict(os.environ)
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[i % len(gpus)]
        if metrics_port:  # one port per process: P, P+1, ...
            env["FITFLEET_WORKER_METRICS_PORT"] = str(metrics_port + i)
        name = f"{hostname}-{i}"
        children.append(subprocess.Popen(
            [sys.executable, "-m", "fitfleet", "worker", "--queues", ",".join(queues),
             "--hostname", name], env=env))

    def forward(signum, _frame):
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = [child.wait() for child in children]
    return max(codes) if codes else 0


def _gpu_ids() -> list[str]:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g for g in visible.split(",") if g.strip()]
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
        return [line.strip() for line in out.splitlines() if line.strip()]
    except (OSError, subprocess.SubprocessError):
        return []
