"""A worker process's own Prometheus figures: lease renewals, checkpoint times, metric rows.

Each worker process serves them over HTTP on ``FITFLEET_WORKER_METRICS_PORT`` (0: off);
``fitfleet worker --concurrency N`` gives its N processes ports ``P .. P+N-1``. The
training code calls the one-line recorders below; they never raise.
"""

from __future__ import annotations

import logging

from prometheus_client import Counter, Gauge, Histogram, start_http_server

log = logging.getLogger("fitfleet.worker")

SECONDS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

LEASE_RENEWALS = Counter(
    "fitfleet_lease_renewals",
    "Lease renewals (heartbeats) of this worker, by outcome: ok, lost or error.",
    ["outcome"],
)
CHECKPOINT_SAVE_SECONDS = Histogram(
    "fitfleet_checkpoint_save_seconds",
    "Seconds from a snapshot to its committed checkpoint (write, upload, commit).",
    buckets=SECONDS,
)
CHECKPOINT_UPLOAD_SECONDS = Histogram(
    "fitfleet_checkpoint_upload_seconds",
    "Seconds spent uploading one checkpoint's objects to the store.",
    buckets=SECONDS,
)
CHECKPOINT_BYTES = Counter(
    "fitfleet_checkpoint_bytes", "Bytes of committed checkpoints written to the store."
)
METRIC_ROWS = Counter(
    "fitfleet_metric_rows_written", "Metric rows (batch and epoch logs) written to the database."
)
JOBS = Counter("fitfleet_worker_attempts", "Attempts this worker ran, by outcome.", ["outcome"])
BUSY = Gauge("fitfleet_worker_busy", "1 while this worker trains a job, else 0.")

_served_port: int | None = None


def serve(port: int, addr: str = "0.0.0.0") -> int | None:
    """Serve this process's figures on ``port`` (0: do nothing); returns the port served."""
    global _served_port
    if not port or _served_port is not None:
        return _served_port
    try:
        start_http_server(port, addr=addr)
    except OSError as exc:
        log.warning("worker metrics: cannot listen on port %d (%s); not serving them", port, exc)
        return None
    _served_port = port
    log.info("worker metrics served on port %d", port)
    return port


def lease_renewed(outcome: str) -> None:
    """Count one renewal: ``ok``, ``lost`` (another attempt holds the job) or ``error``."""
    LEASE_RENEWALS.labels(outcome).inc()


def checkpoint_uploaded(seconds: float) -> None:
    CHECKPOINT_UPLOAD_SECONDS.observe(seconds)


def checkpoint_saved(seconds: float, nbytes: int = 0) -> None:
    CHECKPOINT_SAVE_SECONDS.observe(seconds)
    CHECKPOINT_BYTES.inc(max(0, nbytes))


def rows_written(n: int) -> None:
    METRIC_ROWS.inc(max(0, n))


def attempt_started() -> None:
    BUSY.set(1)


def attempt_ended(outcome: str) -> None:
    BUSY.set(0)
    JOBS.labels(outcome).inc()
