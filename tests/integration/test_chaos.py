"""Chaos: several jobs, several workers, workers SIGKILLed at random moments until every
job is done. All succeed, all match their uninterrupted references bit for bit, and the
metric tables hold exactly one row per step."""

from __future__ import annotations

import random
import signal
import time

import numpy as np
import pytest
from stack import wait_for

from tests.integration.jobs_helpers import metric_rows, model_weights, upload_blobs
from tests.specs import mlp_spec

pytestmark = pytest.mark.slow

EPOCHS, KILLS, JOBS = 8, 4, 3  # long enough that four kills land before the jobs end


def test_random_sigkills_until_done(stack, s3, tmp_path):
    stack.start_api()
    stack.start_reaper()
    stack.start_worker("ref", queues="reference")  # never killed
    chaos = [stack.start_worker(f"c{i}") for i in range(2)]
    specs = [
        mlp_spec(
            upload_blobs(s3, n=1500, features=12, seed=i),
            features=12,
            hidden=24,
            epochs=EPOCHS,
            batch_size=8,
            seed=100 + i,
            max_attempts=20,
            checkpoint={"every_n_batches": 25},
        )
        for i in range(JOBS)
    ]
    refs, jobs = [], []
    for spec in specs:
        status, ref = stack.http("POST", "/api/v1/jobs", {**spec, "queue": "reference"})
        assert status == 201, ref
        status, job = stack.http("POST", "/api/v1/jobs", spec)
        assert status == 201, job
        refs.append(ref["id"])
        jobs.append(job["id"])

    rng = random.Random(1234)
    kills = 0

    def all_ended():
        return all(stack.job(j)["state"] in ("succeeded", "failed") for j in jobs)

    deadline = time.monotonic() + 600
    while kills < KILLS and not all_ended() and time.monotonic() < deadline:
        time.sleep(rng.uniform(1.0, 4.0))
        running = [stack.job(j) for j in jobs if stack.job(j)["state"] == "running"]
        if not running:
            continue
        victim = rng.choice(chaos)
        stack.kill(victim, signal.SIGKILL)
        victim.wait(10)
        chaos[chaos.index(victim)] = stack.start_worker(f"c{2 + kills}")
        kills += 1
    assert kills == KILLS, "the jobs ended before the chaos did; make them longer"

    wait_for(all_ended, 600, 1.0, "every chaos job ended")
    for ref_id in refs:
        stack.wait_state(ref_id, ["succeeded", "failed"], timeout=600)
    lost = 0
    for ref_id, job_id in zip(refs, jobs, strict=True):
        job = stack.job(job_id)
        assert job["state"] == "succeeded", job["error"]
        attempts = stack.http("GET", f"/api/v1/jobs/{job_id}/attempts")[1]["attempts"]
        lost += sum(a["state"] == "lost" for a in attempts)
        for a, b in zip(
            model_weights(stack, ref_id, tmp_path),
            model_weights(stack, job_id, tmp_path),
            strict=True,
        ):
            np.testing.assert_array_equal(a, b)
        spe = job["progress"]["steps_per_epoch"]
        steps = [r["step"] for r in metric_rows(stack, job_id, "batch")]
        assert steps == list(range(1, EPOCHS * spe + 1))
        assert [r["logs"] for r in metric_rows(stack, job_id, "epoch")] == [
            r["logs"] for r in metric_rows(stack, ref_id, "epoch")
        ]
    assert lost >= 1  # at least one kill hit a job mid-training
