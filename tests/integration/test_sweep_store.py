"""Sweep state in the database, on SQLite and PostgreSQL: processes advancing one sweep at
once make no trial twice and run no more than max_parallel; the first pruning verdict
written for (job, epoch) is the one every later reader gets."""

from __future__ import annotations

import threading

import pytest

from service.core.config import Settings
from service.store.sweeps import SweepStore
from service.sweeps import controller, pruning
from testbed.specs import blobs, mlp_spec, npz_bytes

LR = "compile.optimizer.config.learning_rate"


@pytest.fixture
def settings(db_url, tmp_path):
    return Settings.from_env(
        {},
        database_url=db_url,
        broker_url="filesystem://",
        storage_url=(tmp_path / "store").as_uri(),
        home=str(tmp_path),
        data_file_roots=str(tmp_path),
    )


def sweep_id(settings, tmp_path, **extra) -> str:
    data = tmp_path / "blobs.npz"
    data.write_bytes(npz_bytes(*blobs(n=40)))
    spec = {
        "base": mlp_spec(data.as_uri(), epochs=3),
        "space": {LR: {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}},
        "objective": {"metric": "val_loss"},
        "max_trials": 6,
        "max_parallel": 2,
        **extra,
    }
    from service.sweeps.spec import admit

    return SweepStore(settings.database_url).create(admit(spec, settings), "test")


def test_concurrent_advances_make_each_trial_once(settings, tmp_path):
    sid = sweep_id(settings, tmp_path)
    barrier = threading.Barrier(4)
    made: list[list[str]] = []

    def advance():
        barrier.wait()
        made.append(controller.advance(settings, sid))

    threads = [threading.Thread(target=advance) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    sweep = SweepStore(settings.database_url).get(sid)
    assert [t["number"] for t in sweep["trials"]] == [0, 1]
    assert sorted(j for jobs in made for j in jobs) == sorted(t["job_id"] for t in sweep["trials"])
    assert len({t["job_id"] for t in sweep["trials"]}) == 2


def test_the_first_verdict_wins_and_is_replayed(settings, tmp_path):
    sid = sweep_id(settings, tmp_path, pruner={"name": "successive_halving", "reduction_factor": 2})
    controller.advance(settings, sid)
    store = SweepStore(settings.database_url)
    first, second = store.get(sid)["trials"]
    t0, t1 = store.trial_of(first["job_id"]), store.trial_of(second["job_id"])
    assert pruning.decide(store, t0, first["job_id"], 0, 1.0) is False  # the first in its rung
    assert pruning.decide(store, t1, second["job_id"], 0, 2.0) is True  # worse than the first
    # A replay of the same epoch gets the recorded verdict, whatever it reports now.
    assert pruning.decide(store, t1, second["job_id"], 0, 0.5) is True
    assert store.record_decision(sid, second["job_id"], 0, 0.5, False, {}) is True
    assert [d["prune"] for d in store.decisions(second["job_id"])] == [True]
    assert store.decisions(second["job_id"])[0]["value"] == 2.0
    assert pruning.pruned_epoch(store, second["job_id"]) == 0
    # The last epoch is never pruned: the trial is complete.
    assert pruning.decide(store, t0, first["job_id"], 2, 99.0) is False
