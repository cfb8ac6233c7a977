"""Log set-up for the API, workers and reaper: text or JSON lines, tagged with the job.

A worker binds the job id and attempt number of the job it trains (:func:`bind`); a
filter then puts them on every record, including those of the heartbeat, metric-writer
and checkpoint threads, which start with an empty context: the binding is kept both in a
context variable and as the process's current job (a worker process trains one job at a
time).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterator

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(job_tag)s: %(message)s"
_job: contextvars.ContextVar[dict | None] = contextvars.ContextVar("fitfleet_job", default=None)
_process_job: dict | None = None
# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "job_id",
    "attempt",
    "job_tag",
    "taskName",
}


def bind(job_id: str, attempt: int | None = None) -> contextvars.Token:
    """Tag the log lines that follow with ``job_id`` and ``attempt``; see :func:`unbind`."""
    global _process_job
    value = {"job_id": job_id, "attempt": attempt}
    _process_job = value
    return _job.set(value)


def unbind(token: contextvars.Token | None = None) -> None:
    """Stop tagging log lines with the job bound last."""
    global _process_job
    _process_job = None
    if token is not None:
        _job.reset(token)


@contextlib.contextmanager
def bound(job_id: str, attempt: int | None = None) -> Iterator[None]:
    """``with bound(job_id, attempt):`` tags every log line inside the block."""
    token = bind(job_id, attempt)
    try:
        yield
    finally:
        unbind(token)


def current() -> dict | None:
    """The job bound in this context, else the process's current job, else None."""
    return _job.get() or _process_job


class JobFilter(logging.Filter):
    """Adds ``job_id`` and ``attempt`` (None outside a job) and ``job_tag`` to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        job = current()
        record.job_id = job["job_id"] if job else None
        record.attempt = job["attempt"] if job else None
        if job is None:
            record.job_tag = ""
        elif record.attempt is None:
            record.job_tag = f" [job {record.job_id}]"
        else:
            record.job_tag = f" [job {record.job_id} attempt {record.attempt}]"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, job_id, attempt, extras."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": _iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "job_id": getattr(record, "job_id", None),
            "attempt": getattr(record, "attempt", None),
            "process": record.process,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def _iso(created: float) -> str:
    millis = int(created * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{millis:03d}Z"


def make_handler(fmt: str = "text", stream=None) -> logging.Handler:
    """A stream handler writing ``fmt`` ("text" or "json") lines, with the job filter."""
    if fmt not in ("text", "json"):
        raise ValueError(f"FITFLEET_LOG_FORMAT must be text or json, got {fmt!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(JobFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler._fitfleet = True  # marks the handler configure() owns
    return handler


def configure(level: str = "INFO", fmt: str = "text", stream=None) -> logging.Handler:
    """Send the root logger's records to one fitfleet handler (replacing an earlier one)."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_fitfleet", False)]:
        root.removeHandler(old)
    handler = make_handler(fmt, stream)
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler


def configure_from(settings) -> logging.Handler:
    """:func:`configure` with the settings' log level and format."""
    return configure(settings.log_level, settings.log_format)
