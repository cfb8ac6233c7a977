"""MetricStore upserts, the polling cursor and downsampling, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from service.core.errors import BadRequest
from service.store.jobs import JobStore
from service.store.metrics import MetricStore


def rows(steps, kind: str = "batch", attempt: int = 1, loss: float = 1.0) -> list[dict]:
    return [
        {
            "kind": kind,
            "step": s,
            "epoch": s // 10,
            "batch": s % 10,
            "attempt": attempt,
            "logs": {"loss": loss / (s + 1)},
            "wall_time": 1000.0 + s,
        }
        for s in steps
    ]


@pytest.fixture
def job_id(db_url):
    return JobStore(db_url).create(
        {"name": "m", "model": {}}, epochs=1, summary=None, max_attempts=3
    )["id"]


@pytest.fixture
def metrics(db_url):
    return MetricStore(db_url)


def test_replayed_step_keeps_one_row_with_latest_logs(metrics, job_id):
    metrics.write(job_id, rows([0, 1, 2], attempt=1, loss=1.0))
    metrics.write(job_id, rows([2, 3], attempt=2, loss=5.0))
    got = metrics.read(job_id, "batch")["rows"]
    assert [r["step"] for r in got] == [0, 1, 2, 3]
    step2 = got[2]
    assert step2["attempt"] == 2 and step2["logs"] == {"loss": 5.0 / 3}
    assert metrics.count(job_id, "batch") == 4


def test_duplicate_step_within_one_write_keeps_the_last(metrics, job_id):
    metrics.write(job_id, rows([4], loss=1.0) + rows([4], loss=8.0))
    got = metrics.read(job_id, "batch")["rows"]
    assert len(got) == 1 and got[0]["logs"] == {"loss": 8.0 / 5}


def test_kinds_are_separate(metrics, job_id):
    metrics.write(job_id, rows([0, 1]) + rows([1], kind="epoch"))
    assert [r["step"] for r in metrics.read(job_id, "epoch")["rows"]] == [1]
    assert len(metrics.read(job_id, "batch")["rows"]) == 2
    with pytest.raises(BadRequest):
        metrics.read(job_id, "bogus")


def test_cursor_returns_each_row_once(metrics, job_id):
    seen, after = [], None

    def poll():
        nonlocal after
        page = metrics.read(job_id, "batch", after=after)
        seen.extend(r["step"] for r in page["rows"])
        after = page["next"]
        return page

    assert poll()["rows"] == []  # a dashboard polling before the first batch
    metrics.write(job_id, rows(range(7)))
    poll()
    assert poll()["rows"] == []
    metrics.write(job_id, rows(range(7, 12)))
    metrics.write(job_id, rows([5, 6], attempt=2))  # a replay does not come back
    poll()
    assert seen == list(range(12))
    assert after == 11


def test_max_points_downsamples_and_keeps_the_last_step(metrics, job_id):
    metrics.write(job_id, rows(range(100)))
    for n in (1, 2, 7, 10, 50):
        got = [r["step"] for r in metrics.read(job_id, "batch", max_points=n)["rows"]]
        assert 1 <= len(got) <= n
        assert got[-1] == 99
        assert got == sorted(set(got))
        if n >= 7:  # spread over the whole history, not only its tail
            assert got[0] < 100 // (n - 1) + 1, got
    assert len(metrics.read(job_id, "batch", max_points=500)["rows"]) == 100


def test_max_points_with_cursor(metrics, job_id):
    metrics.write(job_id, rows(range(100)))
    got = [r["step"] for r in metrics.read(job_id, "batch", after=49, max_points=5)["rows"]]
    assert 1 <= len(got) <= 5 and got[-1] == 99 and got[0] > 49
