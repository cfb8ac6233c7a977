"""Structured logs: JSON or text lines, with the job id and attempt on every worker line."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from service.core import logs

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def capture():
    """A fresh logger writing through a fitfleet handler into a string buffer."""
    made = []

    def make(fmt: str):
        buf = io.StringIO()
        logger = logging.getLogger(f"fitfleet.test.{fmt}.{len(made)}")
        logger.handlers = [logs.make_handler(fmt, buf)]
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        made.append(logger)
        return logger, buf

    yield make
    for logger in made:
        logger.handlers = []
    logs.unbind()


def json_lines(buf: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buf.getvalue().splitlines()]


def test_json_lines_carry_the_bound_job_and_attempt(capture):
    logger, buf = capture("json")
    logger.info("before")
    with logs.bound("job123", 2):
        logger.warning("inside %s", "the attempt", extra={"step": 14})
    logger.info("after")
    before, inside, after = json_lines(buf)
    assert (before["job_id"], before["attempt"]) == (None, None)
    assert inside["job_id"] == "job123" and inside["attempt"] == 2
    assert inside["message"] == "inside the attempt" and inside["level"] == "WARNING"
    assert inside["step"] == 14 and inside["logger"] == logger.name
    assert inside["time"].endswith("Z")
    assert (after["job_id"], after["attempt"]) == (None, None)


def test_threads_started_during_a_job_are_tagged_too(capture):
    """Heartbeat, metric and checkpoint threads start with an empty context."""
    logger, buf = capture("json")
    with logs.bound("jobT", 3):
        t = threading.Thread(target=lambda: logger.info("from a thread"))
        t.start()
        t.join()
    (line,) = json_lines(buf)
    assert (line["job_id"], line["attempt"]) == ("jobT", 3)


def test_exceptions_are_kept_in_json(capture):
    logger, buf = capture("json")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logger.exception("failed")
    (line,) = json_lines(buf)
    assert "RuntimeError: boom" in line["exc_info"]


def test_text_lines_name_the_job(capture):
    logger, buf = capture("text")
    logger.info("plain")
    with logs.bound("abc", 1):
        logger.info("tagged")
    first, second = buf.getvalue().splitlines()
    assert "[job" not in first and first.endswith(": plain")
    assert "[job abc attempt 1]: tagged" in second


def test_configure_replaces_its_own_handler_and_refuses_unknown_formats():
    root = logging.getLogger()
    before = list(root.handlers)
    level = root.level
    try:
        logs.configure("WARNING", "json", io.StringIO())
        logs.configure("INFO", "text", io.StringIO())
        ours = [h for h in root.handlers if getattr(h, "_fitfleet", False)]
        assert len(ours) == 1 and root.level == logging.INFO
        with pytest.raises(ValueError, match="text or json"):
            logs.configure("INFO", "xml")
    finally:
        root.handlers = before
        root.setLevel(level)


def test_command_line_logs_json_when_asked(tmp_path):
    env = {
        **os.environ,
        "FITFLEET_LOG_FORMAT": "json",
        "FITFLEET_HOME": str(tmp_path),
        "FITFLEET_LOG_LEVEL": "INFO",
    }
    code = (
        "import logging\nfrom fitfleet.cli_server import load_settings\n"
        "from service.core import logs\n"
        "load_settings()\nwith logs.bound('j1', 4):\n"
        "    logging.getLogger('fitfleet.worker').info('hello')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    line = json.loads(proc.stderr.strip().splitlines()[-1])
    assert line["message"] == "hello" and line["job_id"] == "j1" and line["attempt"] == 4
