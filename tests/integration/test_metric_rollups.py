"""Downsampling for pollers: rollups kept by writes, extremes kept, a million rows, the cursor."""

from __future__ import annotations

import itertools
import random
import time

import pytest
from sqlalchemy import select, text

from service.core.errors import NotFound
from service.store import rollups
from service.store.db import get_engine, session_scope
from service.store.jobs import JobStore
from service.store.metrics import MetricStore
from service.store.tables import MetricRollup


def make_rows(steps, attempt: int = 1, loss=lambda s: 1.0 / (s + 1)) -> list[dict]:
    return [
        {
            "kind": "batch",
            "step": s,
            "epoch": s // 100,
            "batch": s % 100,
            "attempt": attempt,
            "logs": {"loss": loss(s), "accuracy": (s % 7) / 7},
            "wall_time": 1000.0 + s,
        }
        for s in steps
    ]


def new_job(url: str) -> str:
    return JobStore(url).create({"name": "m", "model": {}}, epochs=1, summary=None, max_attempts=3)[
        "id"
    ]


def rollup_table(url: str, job_id: str) -> dict:
    with session_scope(url) as s:
        rows = s.execute(select(MetricRollup).where(MetricRollup.job_id == job_id)).scalars()
        return {
            (r.kind, r.level, r.start): (r.first_step, r.last_step, r.rows, r.stats) for r in rows
        }


def test_cover_splits_a_range_into_aligned_blocks_and_ragged_edges():
    pieces = rollups.cover(5, 70_000, 2)
    assert pieces[0] == (-1, 5, 31)
    assert (2, 32_768, 65_535) in pieces
    covered = sorted((lo, hi) for _, lo, hi in pieces)
    assert covered[0][0] == 5 and covered[-1][1] == 70_000
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(covered))  # no gap, no overlap
    for level, lo, hi in pieces:
        if level >= 0:
            size = rollups.SIZES[level]
            assert lo % size == 0 and (hi + 1) % size == 0


def test_incremental_writes_keep_the_same_rollups_as_a_rebuild(db_url):
    metrics, job_id = MetricStore(db_url), new_job(db_url)
    rng = random.Random(3)
    steps = list(range(1, 3000))
    i = 0
    while i < len(steps):  # uneven flushes, like a worker's
        n = rng.randint(1, 90)
        metrics.write(job_id, make_rows(steps[i : i + n], loss=lambda s: rng.random()))
        i += n
    metrics.write(job_id, make_rows(range(1500, 1600), attempt=2, loss=lambda s: 9.0))  # replay
    incremental = rollup_table(db_url, job_id)
    metrics.rebuild(job_id, "batch")
    assert rollup_table(db_url, job_id) == incremental
    top = incremental[("batch", 1, 1024)]
    assert top[3]["loss"][2] == 9.0 and 1500 <= top[3]["loss"][3] < 1600


@pytest.mark.parametrize("max_points", [3, 11, 101, 500])
def test_downsampling_keeps_spikes_dips_and_the_last_step(db_url, max_points):
    metrics, job_id = MetricStore(db_url), new_job(db_url)
    spikes = {777: 50.0, 2345: -3.0}
    metrics.write(job_id, make_rows(range(5000), loss=lambda s: spikes.get(s, 1.0)))
    body = metrics.read(job_id, "batch", max_points=max_points)
    steps = [r["step"] for r in body["rows"]]
    assert body["downsampled"] is True
    assert len(steps) <= max_points
    assert steps == sorted(set(steps)) and steps[-1] == 4999
    assert 777 in steps and 2345 in steps
    other = metrics.read(job_id, "batch", max_points=max_points, metric="accuracy")
    assert other["metric"] == "accuracy" and len(other["rows"]) <= max_points


def test_downsampling_with_a_cursor_stays_after_it(db_url):
    metrics, job_id = MetricStore(db_url), new_job(db_url)
    metrics.write(job_id, make_rows(range(2000), loss=lambda s: 7.0 if s == 1200 else 1.0))
    steps = [r["step"] for r in metrics.read(job_id, "batch", after=1100, max_points=21)["rows"]]
    assert len(steps) <= 21 and steps[0] > 1100 and steps[-1] == 1999 and 1200 in steps
    few = metrics.read(job_id, "batch", after=1990, max_points=21)
    assert [r["step"] for r in few["rows"]] == list(range(1991, 2000))
    assert few["downsampled"] is False


def test_cursor_returns_each_row_exactly_once_across_a_resume(db_url):
    metrics, job_id = MetricStore(db_url), new_job(db_url)
    seen, after = [], None

    def poll():
        nonlocal after
        page = metrics.read(job_id, "batch", after=after)
        seen.extend(r["step"] for r in page["rows"])
        after = page["next"]

    metrics.write(job_id, make_rows(range(1, 41)))
    poll()
    metrics.write(job_id, make_rows(range(41, 53)))  # the first attempt dies at step 52
    poll()
    for chunk in (range(31, 45), range(45, 61), range(61, 80)):  # resumed from step 30
        metrics.write(job_id, make_rows(chunk, attempt=2))
        poll()
    poll()
    assert seen == list(range(1, 80))
    assert metrics.version(job_id, "batch") == 5
    assert metrics.version(job_id, "epoch") == 0
    with pytest.raises(NotFound):
        metrics.version("nope", "batch")
    with pytest.raises(NotFound):
        metrics.version(job_id, "batch", project="another")


def test_a_million_rows_downsample_to_at_most_n_points_with_the_spike(pg_clean):
    url = pg_clean
    metrics, job_id = MetricStore(url), new_job(url)
    with get_engine(url).begin() as conn:
        conn.execute(
            text(
                "INSERT INTO metrics (job_id, kind, step, epoch, batch, attempt, logs, wall_time) "
                "SELECT :job, 'batch', s, s / 1000, s % 1000, 1, "
                "json_build_object('loss', CASE WHEN s = 612345 THEN 99.5 "
                "ELSE 1.0 / (1 + s % 977) END), 1000.0 + s "
                "FROM generate_series(1, 1000000) AS s"
            ),
            {"job": job_id},
        )
    metrics.rebuild(job_id, "batch")
    started = time.perf_counter()
    body = metrics.read(job_id, "batch", max_points=500)
    elapsed = time.perf_counter() - started
    steps = [r["step"] for r in body["rows"]]
    assert len(steps) <= 500 and steps[-1] == 1_000_000
    assert 612345 in steps
    assert max(r["logs"]["loss"] for r in body["rows"]) == 99.5
    assert elapsed < 5  # a generous guard; bench/poll_bench.py measures it
    tail = metrics.read(job_id, "batch", after=999_990)
    assert [r["step"] for r in tail["rows"]] == list(range(999_991, 1_000_001))


def test_a_large_max_points_fetches_its_rows_in_several_statements(db_url):
    metrics, job_id = MetricStore(db_url), new_job(db_url)
    metrics.write(job_id, make_rows(range(6000), loss=lambda s: float(s % 13)))
    body = metrics.read(job_id, "batch", max_points=5999)
    steps = [r["step"] for r in body["rows"]]
    assert body["downsampled"] and 2000 < len(steps) <= 5999  # more than one IN list's worth
    assert steps == sorted(set(steps)) and steps[-1] == 5999


def test_upgrading_to_0003_builds_rollups_for_rows_written_before(tmp_path):
    from service.store.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0002")
    with get_engine(url).begin() as conn:
        conn.execute(
            text(
                "INSERT INTO jobs (id, name, project, state, spec, queue, priority, max_attempts, "
                "attempts, lost_attempts, cancel_requested, epoch, epochs, batch, step, created_at, "
                "updated_at) VALUES ('old', 'n', 'default', 'running', '{}', 'default', 0, 3, 1, 0, "
                "0, 0, 1, 0, 0, '2026-01-01', '2026-01-01')"
            )
        )
        conn.execute(
            text("INSERT INTO metrics VALUES ('old', 'batch', :s, 0, 0, 1, :logs, 1.0)"),
            [
                {"s": s, "logs": '{"loss": 99.0}' if s == 1500 else '{"loss": 1.0}'}
                for s in range(1, 3001)
            ],
        )
    upgrade(url)
    body = MetricStore(url).read("old", "batch", max_points=21)
    steps = [r["step"] for r in body["rows"]]
    assert len(steps) <= 21 and 1500 in steps and steps[-1] == 3000
