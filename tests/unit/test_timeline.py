"""The timeline and log lines an in-process attempt writes (SQLite, a local store)."""

from __future__ import annotations

import logging
import threading

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from service.admission.spec import normalize
from service.storage import key_of, open_store
from service.store import events, worklogs
from service.store.detail import job_detail
from service.store.jobs import JobStore
from tests.specs import blobs, mlp_spec
from tests.unit.attempts import PreemptAt


@pytest.fixture
def env(tmp_path):
    from tests.conftest import embedded_settings

    x, y = blobs()
    np.savez(tmp_path / "train.npz", x=x, y=y)
    return embedded_settings(tmp_path), (tmp_path / "train.npz").as_uri()


def timeline(settings, job_id) -> list[dict]:
    return events.list_events(settings.database_url, job_id)["events"]


def test_a_preempted_job_resumed_past_a_damaged_checkpoint_tells_it_in_order(env):
    from workers.training.attempt import Attempt

    settings, url = env
    spec = mlp_spec(url, checkpoint={"every_n_batches": 2, "keep_last": 3})
    jobs = JobStore(settings.database_url)
    job = jobs.create(normalize(spec, settings), epochs=3, summary=None, max_attempts=3)
    claim = jobs.claim(job["id"], "w1", settings.lease_seconds)
    flag = threading.Event()
    assert Attempt(claim, settings, flag, [PreemptAt(9, 6, flag)]).run() == "preempted"
    store = open_store(settings.storage_url)
    newest = store.base / key_of(store, jobs.checkpoints(job["id"])[-1]["uri"])
    (newest / "model.keras").write_bytes(b"not a keras file")
    claim = jobs.claim(job["id"], "w2", settings.lease_seconds)
    assert Attempt(claim, settings, threading.Event()).run() == "succeeded"

    got = timeline(settings, job["id"])
    story = [(e["type"], e["attempt"]) for e in got if e["type"] != events.VALIDATED]
    assert story == [
        ("submitted", None),
        ("queued", None),
        ("claimed", 1),
        ("first_batch", 1),
        *[("checkpoint", 1)] * 5,  # steps 2, 4, 6, 8 and 9 (the preemption's)
        ("preempted", 1),
        ("released", 1),
        ("requeued", 1),
        ("claimed", 2),
        ("checkpoint_skipped", 2),
        ("restored", 2),
        ("first_batch", 2),
        *[("checkpoint", 2)] * 5,  # steps 10 .. 18
        ("finished", 2),
    ]
    by_type = {}
    for e in got:
        by_type.setdefault(e["type"], []).append(e["data"])
    assert [c["step"] for c in by_type["checkpoint"]] == [2, 4, 6, 8, 9, 10, 12, 14, 16, 18]
    assert all(
        c["blocked_seconds"] >= 0 and c["background_seconds"] > 0 for c in by_type["checkpoint"]
    )
    assert by_type["checkpoint_skipped"][0]["step"] == 9
    restored = by_type["restored"][0]
    assert restored["step"] == 8 and restored["bytes"] > 0
    assert restored["fetch_seconds"] >= 0 and restored["load_seconds"] > 0
    assert [f["step"] for f in by_type["first_batch"]] == [1, 9]
    assert by_type["released"] == [{"step": 9}]
    assert by_type["finished"] == [
        {"state": "succeeded", "error_code": None, "error_message": None}
    ]
    passes = [(e["attempt"], e["data"]["epoch"]) for e in got if e["type"] == events.VALIDATED]
    assert passes == [(1, 0), (1, 1), (2, 1), (2, 2)]  # (1, 1): abandoned by the preemption
    detail = job_detail(jobs, job["id"])
    split = detail["goodput"]
    assert abs(sum(split["seconds"].values()) - split["wall_seconds"]) < 1.0
    assert split["steps_redone"] == sum(a["steps_redone"] for a in detail["attempts"]) == 1
    assert split["seconds"]["validation"] > 0  # the one step redone was the first batch
    assert split["seconds"]["training"] > 0 and 0 < split["goodput"] < 1
    assert [a["number"] for a in split["attempts"]] == [1, 2]
    lines = worklogs.read(settings.database_url, job["id"], attempt=2)["lines"]
    assert any("skipping checkpoint at step 9" in line["message"] for line in lines)
    assert all(line["attempt"] == 2 and line["level"] == "WARNING" for line in lines)


def test_the_journal_bounds_and_scrubs_an_attempts_lines(tmp_path, monkeypatch):
    from tests.conftest import migrated_sqlite
    from workers.training import journal

    url = migrated_sqlite(tmp_path)
    jobs = JobStore(url)
    job = jobs.create({"name": "j"}, epochs=1, summary=None, max_attempts=1)
    claim = jobs.claim(job["id"], "w1", 60)
    monkeypatch.setattr(journal, "MAX_LINES", 5)
    j = journal.Journal(jobs, job["id"], claim.attempt_id, claim.number)
    logger = logging.getLogger("fitfleet.test")
    with j.handler:
        logger.info("not captured: below WARNING")
        logger.warning("reading /srv/fitfleet/data/x.npz with password=hunter2")
        try:
            np.zeros((2, 3)) @ np.zeros((4, 5))
        except ValueError:
            logger.exception("the job failed")
        for i in range(10):
            logger.error("line %d", i)
    j.close()
    logger.warning("after the attempt: not captured")
    lines = [r["message"] for r in worklogs.read(url, job["id"])["lines"]]
    assert len(lines) == 6
    assert lines[0] == "reading <path> with password=<redacted>"
    assert "the job failed\nValueError: matmul: Input operand 1 has a mismatch" in lines[1]
    assert "test_timeline.py" in lines[1] and "/work" not in lines[1]
    assert lines[2:5] == ["line 0", "line 1", "line 2"]
    assert lines[5] == ("7 more lines dropped: an attempt keeps its first 5 lines and 256 KiB")
