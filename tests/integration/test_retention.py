"""Retention: old batch metric rows compacted, ended jobs' checkpoints pruned (rows, then objects)."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import select

from service.core.config import Settings
from service.storage import LocalStore
from service.store import retention
from service.store.jobs import JobStore
from service.store.metrics import MetricStore

DAY = 86400.0


def new_job(url: str, keep_best: dict | None = None) -> tuple[str, int]:
    jobs = JobStore(url)
    spec = {"name": "r", "checkpoint": {"every_epoch": True, "keep_best": keep_best}}
    job = jobs.create(spec, epochs=4, summary=None, max_attempts=3)
    return job["id"], jobs.claim(job["id"], "w", lease_seconds=60).attempt_id


def batch_rows(first: int, last: int, wall_time: float) -> list[dict]:
    return [
        {
            "kind": "batch",
            "step": s,
            "epoch": (s - 1) // 100,
            "batch": (s - 1) % 100,
            "attempt": 1,
            "logs": {"loss": 1.0 / s},
            "wall_time": wall_time,
        }
        for s in range(first, last + 1)
    ]


def steps(url: str, job_id: str, kind: str) -> list[int]:
    return [r["step"] for r in MetricStore(url).read(job_id, kind, limit=100_000)["rows"]]


def test_old_batch_rows_are_compacted_recent_and_epoch_rows_kept(db_url):
    job_id, _ = new_job(db_url)
    now = time.time()
    metrics = MetricStore(db_url)
    metrics.write(job_id, batch_rows(1, 400, now - 10 * DAY))
    metrics.write(job_id, batch_rows(401, 450, now - 60))
    metrics.write(
        job_id,
        [
            {
                "kind": "epoch",
                "step": 100 * (e + 1),
                "epoch": e,
                "batch": None,
                "attempt": 1,
                "logs": {"loss": 0.1},
                "wall_time": now - 10 * DAY,
            }
            for e in range(4)
        ],
    )

    assert retention.compact_metrics(db_url, 7 * DAY, 20, dry_run=True) == (1, 380)
    assert len(steps(db_url, job_id, "batch")) == 450  # a dry run changes nothing

    assert retention.compact_metrics(db_url, 7 * DAY, 20) == (1, 380)
    kept = steps(db_url, job_id, "batch")
    old = [s for s in kept if s <= 400]
    assert len(old) == 20 and old[0] == 1 and old[-1] == 400
    assert kept[20:] == list(range(401, 451))  # newer than the age: untouched
    assert steps(db_url, job_id, "epoch") == [100, 200, 300, 400]
    assert retention.compact_metrics(db_url, 7 * DAY, 20) == (0, 0)  # idempotent


def test_kept_steps_are_evenly_spread():
    keep = retention.kept_steps(list(range(1, 1001)), 11)
    assert len(keep) == 11 and min(keep) == 1 and max(keep) == 1000
    gaps = [b - a for a, b in zip(sorted(keep), sorted(keep)[1:])]
    assert max(gaps) <= 100
    assert retention.kept_steps([5, 6], 10) == {5, 6}


def commit(url, store, job_id, attempt_id, step, val_loss) -> str:
    prefix = f"ckpt/{job_id}/{step:06d}"
    store.put_bytes(f"{prefix}/model.keras", b"weights")
    store.put_bytes(f"{prefix}/state.json", b"{}")
    JobStore(url).commit_checkpoint(
        job_id,
        attempt_id,
        {
            "step": step,
            "epoch": step // 10,
            "batch": 0,
            "uri": store.uri(prefix),
            "files": {},
            "bytes": 9,
            "sha256": "0" * 64,
            "logs": {"val_loss": val_loss},
        },
    )
    return prefix


def test_ended_jobs_keep_the_final_model_and_the_best_checkpoint(db_url, tmp_path):
    store = LocalStore(tmp_path / "store")
    jobs = JobStore(db_url)
    done, a1 = new_job(db_url, keep_best={"monitor": "val_loss", "mode": "min"})
    losses = {10: 0.5, 20: 0.3, 30: 0.4, 40: 0.6}
    prefixes = {s: commit(db_url, store, done, a1, s, v) for s, v in losses.items()}
    store.put_bytes(f"ckpt/{done}/model.keras", b"final")
    jobs.finish(done, a1, "succeeded", model_uri=store.uri(f"ckpt/{done}/model.keras"))

    failed, a2 = new_job(db_url)
    failed_prefixes = {s: commit(db_url, store, failed, a2, s, 0.1) for s in (10, 20, 30)}
    jobs.finish(failed, a2, "failed", error_code="training_error", error_message="x")

    running, a3 = new_job(db_url)
    for s in (10, 20, 30):
        commit(db_url, store, running, a3, s, 0.1)

    assert retention.prune_checkpoints(db_url, dry_run=True) == (2, 5, 0)
    assert len(store.list(f"ckpt/{done}/")) == 9

    assert retention.prune_checkpoints(db_url) == (2, 5, 10)
    assert [c["step"] for c in jobs.checkpoints(done)] == [20]
    assert jobs.get(done)["latest_checkpoint"]["step"] == 20
    assert store.list(f"ckpt/{done}/") == sorted(
        [f"ckpt/{done}/model.keras", f"{prefixes[20]}/model.keras", f"{prefixes[20]}/state.json"]
    )
    # No final model: the latest checkpoint stands for it.
    assert [c["step"] for c in jobs.checkpoints(failed)] == [30]
    assert {k.rsplit("/", 1)[0] for k in store.list(f"ckpt/{failed}/")} == {failed_prefixes[30]}
    assert [c["step"] for c in jobs.checkpoints(running)] == [10, 20, 30]  # still training
    assert retention.prune_checkpoints(db_url) == (0, 0, 0)


def test_command_line_runs_a_pass_and_prints_its_report(monkeypatch, tmp_path, sqlite_url, capsys):
    from fitfleet.cli import main
    from service.core import config

    job_id, _ = new_job(sqlite_url)
    MetricStore(sqlite_url).write(job_id, batch_rows(1, 50, time.time() - 3 * DAY))
    monkeypatch.setenv("FITFLEET_HOME", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    config.reset_settings()
    try:
        assert main(["retention", "--metrics-age-hours", "24", "--points", "5"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert main(["retention", "--points", "0"]) == 2
    finally:
        config.reset_settings()
    assert report["jobs_compacted"] == 1 and report["metric_rows_deleted"] == 45
    assert len(steps(sqlite_url, job_id, "batch")) == 5


def test_schedule_runs_a_pass_when_due_in_its_own_thread(tmp_path, sqlite_url):
    now = [0.0]
    off = retention.Schedule(
        Settings.from_env({}, database_url=sqlite_url, home=str(tmp_path)), clock=lambda: now[0]
    )
    now[0] = 1e9
    assert off.tick() is False  # interval 0: retention is left to the command line
    settings = Settings.from_env(
        {}, database_url=sqlite_url, home=str(tmp_path), retention_interval=60.0
    )
    schedule = retention.Schedule(settings, clock=lambda: now[0])
    now[0] = 1e9 + 30
    assert schedule.tick() is False  # not due yet
    now[0] = 1e9 + 61
    assert schedule.tick() is True
    schedule.thread.join(10)
    assert schedule.last is not None and schedule.last.dry_run is False
    assert schedule.tick() is False  # next one is an interval away


@pytest.mark.parametrize("points", [0, -3])
def test_points_must_be_positive(sqlite_url, points):
    with pytest.raises(ValueError):
        retention.compact_metrics(sqlite_url, DAY, points)


def test_the_reaper_runs_retention_passes(tmp_path, sqlite_url):
    import threading

    from service.ops import reaper

    store = LocalStore(tmp_path / "store")
    job_id, attempt_id = new_job(sqlite_url)
    for s in (10, 20, 30):
        commit(sqlite_url, store, job_id, attempt_id, s, 0.1)
    JobStore(sqlite_url).finish(job_id, attempt_id, "cancelled")
    settings = Settings.from_env(
        {},
        database_url=sqlite_url,
        home=str(tmp_path),
        reaper_interval=0.05,
        retention_interval=0.1,
    )
    stop = threading.Event()
    thread = threading.Thread(target=reaper.run, args=(settings, stop), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while len(JobStore(sqlite_url).checkpoints(job_id)) > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(10)
    assert [c["step"] for c in JobStore(sqlite_url).checkpoints(job_id)] == [30]
    assert not thread.is_alive()


QUESTIONS = (
    "kind=batch",
    "kind=batch&after=1000",
    "kind=batch&max_points=5",
    "kind=batch&max_points=51",
    "kind=batch&max_points=501",
    "kind=batch&max_points=51&after=1500",
    "kind=batch&max_points=51&metric=acc",
    "kind=epoch&max_points=3",
)


def spiky_rows(first: int, last: int, wall_time: float) -> list[dict]:
    spikes = {7: 40.0, 777: 9.0, 1234: -5.0, 2999: float("nan"), 3050: float("inf")}
    return [
        {
            "kind": "batch",
            "step": s,
            "epoch": s // 1000,
            "batch": s % 1000,
            "attempt": 1,
            "logs": {"loss": spikes.get(s, 1.0 / s), "acc": (s % 13) / 13},
            "wall_time": wall_time,
        }
        for s in range(first, last + 1)
    ]


def test_polls_after_compaction_answer_what_a_fresh_computation_answers(db_url, tmp_path):
    pytest.importorskip("flask")
    from service.store.db import session_scope
    from service.store.tables import MetricRollup
    from tests.unit.apihelpers import api_client, make_settings

    client = api_client(make_settings(tmp_path, db_url))
    now, metrics = time.time(), MetricStore(db_url)
    job_id, _ = new_job(db_url)
    metrics.write(job_id, spiky_rows(1, 3000, now - 10 * DAY))
    metrics.write(job_id, spiky_rows(3001, 3100, now - 60))
    metrics.write(
        job_id,
        [
            {
                "kind": "epoch",
                "step": 1000 * e,
                "epoch": e,
                "batch": None,
                "attempt": 1,
                "logs": {"loss": 1.0 / e},
                "wall_time": now,
            }
            for e in (1, 2, 3)
        ],
    )
    before = {}
    for q in QUESTIONS:  # dashboards polling: answers cached under their ETags
        answer = client.get(f"/api/v1/jobs/{job_id}/metrics?{q}")
        before[q] = (answer.headers["ETag"], answer.get_json())
    assert retention.compact_metrics(db_url, 7 * DAY, 40)[1] > 2900

    fresh_id, _ = new_job(db_url)  # the same remaining rows, written to a new job at once
    for kind in ("batch", "epoch"):
        left = metrics.read(job_id, kind, limit=100_000)["rows"]
        metrics.write(fresh_id, [{"kind": kind, **r} for r in left])
    for q in QUESTIONS:
        etag, old = before[q]
        again = client.get(f"/api/v1/jobs/{job_id}/metrics?{q}", headers={"If-None-Match": etag})
        fresh = client.get(f"/api/v1/jobs/{fresh_id}/metrics?{q}").get_json()
        if q.startswith("kind=epoch"):  # epoch rows are not compacted: still current
            assert again.status_code == 304, q
            continue
        assert again.status_code == 200 and again.headers["ETag"] != etag, q
        assert again.get_json() == fresh, q
        assert old != fresh, q  # the question did see the deleted rows before

    def blocks(jid):
        with session_scope(db_url) as s:
            return {
                (r.kind, r.level, r.start): (r.first_step, r.last_step, r.rows, r.stats)
                for r in s.scalars(select(MetricRollup).where(MetricRollup.job_id == jid))
            }

    assert blocks(job_id) == blocks(fresh_id)
