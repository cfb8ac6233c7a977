"""An attempt's journal: the events a worker sees and the log lines it writes, in the background.

The training thread never waits on the database for either: :meth:`Journal.note` (an
event such as the first batch or a validation pass) and the log handler put items on a
queue that one thread writes, log lines in batches. Events are fenced (only while the
attempt holds the job, :meth:`service.store.jobs.JobStore.note`); log lines are kept
even from an attempt that lost the job, since they may say why.

Captured lines: records of WARNING or worse from any logger while the attempt runs, with
the exception's own message (Keras's, TensorFlow's) and a short traceback summary when
the record carries one. Each line is scrubbed of secrets and server paths as error
messages are. An attempt keeps at most :data:`MAX_LINES` lines and :data:`MAX_BYTES`
bytes; the rest are counted, and one last line says how many were dropped.
"""

from __future__ import annotations

import logging
import queue
import threading
import traceback
from datetime import datetime, timezone
from typing import Self

from service.store import worklogs
from workers.training.reasons import reason, scrub

log = logging.getLogger("fitfleet.worker")

MAX_LINES = 1000
MAX_BYTES = 256 * 1024
MAX_LINE = 4000  # characters of one line
FRAMES = 6  # innermost traceback frames kept in a line's summary


class Journal:
    """Writes one attempt's events and log lines from a background thread."""

    def __init__(self, jobs, job_id: str, attempt_id: int, number: int):
        self.jobs, self.job_id, self.attempt_id, self.number = jobs, job_id, attempt_id, number
        self.lines = self.bytes = self.dropped = 0
        self.handler = CaptureHandler(self)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="journal", daemon=True)
        self._thread.start()

    def note(self, type: str, data: dict) -> None:
        """Append event ``type`` with ``data`` (timed now) to the job's timeline, soon."""
        self._queue.put(("event", type, data, _now()))

    def line(self, level: str, logger: str, message: str) -> None:
        """Keep one log line, within the attempt's bounds."""
        message = scrub(message)[:MAX_LINE]
        size = len(message.encode())
        if self.lines >= MAX_LINES or self.bytes + size > MAX_BYTES:
            self.dropped += 1
            return
        self.lines += 1
        self.bytes += size
        row = {"at": _now(), "level": level, "logger": logger[:200], "message": message}
        self._queue.put(("line", row))

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is written (or ``timeout`` passed)."""
        done = threading.Event()
        self._queue.put(("flush", done))
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write the dropped-lines marker and what is queued, then stop the thread."""
        if self.dropped:
            row = {
                "at": _now(),
                "level": "WARNING",
                "logger": "fitfleet.worker",
                "message": (
                    f"{self.dropped} more lines dropped: an attempt keeps its first "
                    f"{MAX_LINES} lines and {MAX_BYTES // 1024} KiB"
                ),
            }
            self._queue.put(("line", row))
        self._queue.put(("stop",))
        self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            items = [self._queue.get()]
            while True:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if not self._write(items):
                return

    def _write(self, items: list) -> bool:
        rows: list[dict] = []
        going = True
        for item in items:
            if item[0] == "line":
                rows.append(item[1])
                continue
            self._lines(rows)
            rows = []
            if item[0] == "event":
                self._event(*item[1:])
            elif item[0] == "flush":
                item[1].set()
            else:
                going = False
        self._lines(rows)
        return going

    def _lines(self, rows: list[dict]) -> None:
        if not rows:
            return
        try:
            worklogs.write(self.jobs.url, self.job_id, self.number, rows)
        except Exception as exc:  # noqa: BLE001 - a side channel: training goes on
            log.info("job %s: %d log lines not stored (%s)", self.job_id, len(rows), exc)

    def _event(self, type: str, data: dict, at: datetime) -> None:
        try:
            self.jobs.note(self.job_id, self.attempt_id, type, data, at=at)
        except Exception as exc:  # noqa: BLE001 - a side channel: training goes on
            log.info("job %s: event %s not stored (%s)", self.job_id, type, exc)


class CaptureHandler(logging.Handler):
    """Sends WARNING-or-worse records to a :class:`Journal` (not the journal's own)."""

    def __init__(self, journal: Journal):
        super().__init__(logging.WARNING)
        self.journal = journal

    def emit(self, record: logging.LogRecord) -> None:
        if threading.current_thread() is self.journal._thread or _deprecation(record):
            return
        try:
            self.journal.line(record.levelname, record.name, describe(record))
        except Exception:  # noqa: BLE001 - never let capture break the caller
            self.handleError(record)

    def __enter__(self) -> Self:
        logging.getLogger().addHandler(self)
        self._was_capturing = getattr(logging, "_warnings_showwarning", None) is not None
        logging.captureWarnings(True)  # warnings.warn lines too: Keras's, TensorFlow's
        return self

    def __exit__(self, *exc) -> None:
        if not self._was_capturing:
            logging.captureWarnings(False)
        logging.getLogger().removeHandler(self)


def describe(record: logging.LogRecord) -> str:
    """The record's message, with its exception's own words and where it was raised."""
    message = record.getMessage()
    if not record.exc_info or record.exc_info[1] is None:
        return message
    exc = record.exc_info[1]
    try:
        said = reason(exc)
    except Exception:  # noqa: BLE001 - fall back on the plain text
        said = str(exc)
    frames = traceback.extract_tb(exc.__traceback__)[-FRAMES:]
    where = " < ".join(
        f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} in {f.name}" for f in reversed(frames)
    )
    return f"{message}\n{type(exc).__name__}: {said}\n  at {where}" if where else message


def _deprecation(record: logging.LogRecord) -> bool:
    """A DeprecationWarning routed through logging: of no use to the job's owner."""
    return record.name == "py.warnings" and "DeprecationWarning: " in str(record.args or record.msg)


def _now() -> datetime:
    return datetime.now(timezone.utc)
