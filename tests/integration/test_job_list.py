"""GET /jobs reads a page in a constant number of SQL statements, on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib

import pytest
from sqlalchemy import event

from service.store.db import get_engine
from service.store.jobs import JobStore

pytest.importorskip("flask")

from tests.unit.apihelpers import api_client, make_settings

SPEC = {
    "name": "tiny",
    "model": {"class_name": "Sequential", "config": {}},
    "compile": {"loss": "mse"},
    "data": {"train": "file:///tmp/x.npz"},
}


@contextlib.contextmanager
def counted(url: str):
    """A list that collects every SQL statement sent to the database of ``url``."""
    seen: list[str] = []

    def note(conn, cursor, statement, *args):
        seen.append(statement)

    engine = get_engine(url)
    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


def jobs_with_checkpoints(url: str, n: int) -> list[str]:
    """``n`` running jobs, each with a committed checkpoint and a metric series."""
    from service.store.metrics import MetricStore

    store, ids = JobStore(url), []
    for i in range(n):
        job = store.create({**SPEC, "name": f"j{i}"}, epochs=2, summary=None, max_attempts=3)
        claim = store.claim(job["id"], "w", 60.0)
        store.commit_checkpoint(
            job["id"],
            claim.attempt_id,
            {
                "step": 3,
                "epoch": 0,
                "batch": 3,
                "uri": f"file:///cp/{i}",
                "files": {},
                "bytes": 1,
                "sha256": "0" * 64,
                "logs": {"loss": 0.5},
            },
        )
        MetricStore(url).write(
            job["id"],
            [
                {
                    "kind": "batch",
                    "step": 1,
                    "epoch": 0,
                    "batch": 0,
                    "attempt": 1,
                    "logs": {"loss": 1.0},
                    "wall_time": 1.0,
                }
            ],
        )
        ids.append(job["id"])
    return ids


def test_the_job_list_makes_as_many_statements_for_200_jobs_as_for_5(db_url, tmp_path):
    ids = jobs_with_checkpoints(db_url, 12)
    client = api_client(make_settings(tmp_path, db_url))
    client.get("/api/v1/jobs?limit=1")  # the token's first use is recorded once
    counts = {}
    for limit in (5, 200):
        with counted(db_url) as seen:
            answer = client.get(f"/api/v1/jobs?limit={limit}")
        assert answer.status_code == 200
        jobs = answer.get_json()["jobs"]
        assert len(jobs) == min(limit, len(ids))
        assert all(j["latest_checkpoint"]["step"] == 3 for j in jobs)
        counts[limit] = len(seen)
    assert counts[5] == counts[200], counts


def test_a_page_answers_what_each_job_answers_alone(db_url):
    store = JobStore(db_url)
    ids = jobs_with_checkpoints(db_url, 3)
    store.create({**SPEC, "name": "bare"}, epochs=1, summary=None, max_attempts=1)
    page, _ = store.list(None, 10, None)
    assert len(page) == 4
    assert page == [store.get(j["id"]) for j in page]
    assert {j["id"] for j in page if j["latest_checkpoint"]} == set(ids)
