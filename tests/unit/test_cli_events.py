"""``fitfleet events`` and ``fitfleet worker-logs`` against the API served on loopback."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from fitfleet.cli import main
from service.store import worklogs
from service.store.jobs import JobStore


@pytest.fixture
def job(served_api, monkeypatch):
    """A job claimed, released and claimed again, a log line from each attempt."""
    url, settings, token = served_api
    monkeypatch.setenv("FITFLEET_TOKEN", token)
    jobs = JobStore(settings.database_url)
    job = jobs.create({"name": "j"}, epochs=1, summary=None, max_attempts=3)
    first = jobs.claim(job["id"], "w1", 30)
    jobs.release(job["id"], first.attempt_id, "the worker was asked to stop")
    second = jobs.claim(job["id"], "w2", 30)
    at = datetime(2026, 12, 1, tzinfo=timezone.utc)
    for number, message in ((1, "first"), (2, "ValueError: Input 0 is incompatible")):
        row = {"at": at, "level": "ERROR", "logger": "fitfleet.worker", "message": message}
        worklogs.write(settings.database_url, job["id"], number, [row])
    return url, jobs, job["id"], second


def test_events_prints_the_timeline_and_follow_ends_with_the_job(job, capsys):
    url, jobs, job_id, second = job
    assert main(["events", job_id, "--api", url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [_type(line) for line in lines] == [
        "submitted",
        "queued",
        "claimed",
        "preempted",
        "released",
        "requeued",
        "claimed",
    ]
    assert "worker=w2" in lines[-1] and "attempt 2" in lines[-1]
    jobs.finish(job_id, second.attempt_id, "failed", error_code="training_error")
    assert main(["events", job_id, "--api", url, "--follow"]) == 3
    assert "error_code=training_error" in capsys.readouterr().out.splitlines()[-1]


def test_worker_logs_of_one_attempt_in_text_and_json(job, capsys):
    url, _, job_id, _ = job
    assert main(["worker-logs", job_id, "--api", url, "--attempt", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    expected = "2026-12-01T00:00:00+00:00  attempt 2  ERROR fitfleet.worker: ValueError: Input 0"
    assert out == [expected + " is incompatible"]
    assert main(["worker-logs", job_id, "--api", url, "--output", "json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["attempt"] for r in rows] == [1, 2]


def _type(line: str) -> str:
    """The event type of a printed line: the word after the attempt column."""
    words = line.split()
    return words[3] if words[1] == "attempt" else words[2]
