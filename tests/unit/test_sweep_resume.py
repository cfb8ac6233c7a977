"""A trial's attempts replay the recorded verdicts: in-process attempts on SQLite and a local
store. A resume from a checkpoint before an epoch end that was decided reads the verdict on
record (here one the pruner would not give now), and a resume past the epoch where the trial
was pruned trains nothing more and keeps the pruned model bit for bit."""

from __future__ import annotations

import threading

import pytest
from attempts import assert_same_weights, final_weights
from sqlalchemy import update

from service.store.db import session_scope
from service.store.jobs import JobStore
from service.store.sweeps import SweepStore
from service.store.tables import Job, PruningDecision
from service.sweeps import controller
from testbed.specs import blobs, mlp_spec, npz_bytes
from tests.conftest import embedded_settings

pytest.importorskip("keras")
LR = "compile.optimizer.config.learning_rate"


def run_attempt(settings, job_id: str) -> str:
    from workers.training.attempt import Attempt

    claim = JobStore(settings.database_url).claim(job_id, "test-worker", settings.lease_seconds)
    assert claim is not None
    return Attempt(claim, settings, threading.Event()).run()


def requeue(settings, job_id: str) -> None:
    """As if the attempt had died before it ended the job: back to queued."""
    with session_scope(settings.database_url) as s:
        s.execute(update(Job).where(Job.id == job_id).values(state="queued", finished_at=None))


def test_resumed_attempts_replay_the_recorded_verdicts(tmp_path):
    settings = embedded_settings(tmp_path, data_file_roots=str(tmp_path))
    data = tmp_path / "blobs.npz"
    data.write_bytes(npz_bytes(*blobs()))  # 96 training samples: 6 steps an epoch
    base = mlp_spec(data.as_uri(), epochs=3, checkpoint={"every_n_batches": 3, "keep_last": 10})
    spec = {
        "base": base,
        "space": {LR: {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}},
        "objective": {"metric": "val_loss"},
        "pruner": {"name": "successive_halving", "reduction_factor": 2},
        "max_trials": 1,
    }
    sweep = controller.submit(spec, settings, "test")
    job_id = sweep["trials"][0]["job_id"]
    store, jobs = SweepStore(settings.database_url), JobStore(settings.database_url)

    assert run_attempt(settings, job_id) == "succeeded"  # the only trial: never pruned
    first = store.decisions(job_id)
    assert [(d["epoch"], d["prune"]) for d in first] == [(0, False), (1, False), (2, False)]

    # A crash that lost every checkpoint after step 3: the resume passes epochs 0 and 1
    # again. The verdict on record for epoch 1 says prune (the pruner alone would not).
    jobs.mark_checkpoints_deleted(job_id, [6, 9, 12, 15, 18])
    with session_scope(settings.database_url) as s:
        s.execute(
            update(PruningDecision)
            .where(PruningDecision.job_id == job_id, PruningDecision.epoch == 1)
            .values(prune=True)
        )
    requeue(settings, job_id)
    assert run_attempt(settings, job_id) == "succeeded"
    job = jobs.get(job_id)
    assert job["stopped"]["by"] == "pruner" and job["stopped"]["epoch"] == 2
    assert job["progress"]["step"] == 12
    again = store.decisions(job_id)
    assert [d["decided_at"] for d in again] == [d["decided_at"] for d in first]  # none rewritten
    pruned_model = final_weights(settings, job_id)

    # A crash after the checkpoint at the pruned epoch's end: nothing more trains.
    requeue(settings, job_id)
    assert run_attempt(settings, job_id) == "succeeded"
    job = jobs.get(job_id)
    assert job["stopped"]["epoch"] == 2 and job["progress"]["step"] == 12
    assert_same_weights(final_weights(settings, job_id), pruned_model)
    assert [a["resumed_from_step"] for a in jobs.attempts(job_id)] == [0, 3, 12]
    controller.advance(settings, sweep["id"])
    trial = store.get(sweep["id"])["trials"][0]
    assert (trial["state"], trial["pruned_epoch"]) == ("pruned", 2)
