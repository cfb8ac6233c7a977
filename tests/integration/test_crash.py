"""Crash resilience with real worker processes: SIGKILL, SIGTERM, a frozen (zombie) worker,
and a poison job. Every resumed job must end bit-identical to an uninterrupted run."""

from __future__ import annotations

import signal
import time

import numpy as np
import pytest

from tests.integration.jobs_helpers import metric_rows, model_weights, upload_blobs
from tests.integration.stack import wait_for
from tests.specs import mlp_spec

pytestmark = pytest.mark.slow

EPOCHS = 12


def long_spec(s3, **kw):
    """About 1,500 steps of a tiny MLP: long enough to kill it in the middle."""
    return mlp_spec(
        upload_blobs(s3, n=2000, features=16),
        features=16,
        hidden=32,
        epochs=EPOCHS,
        batch_size=8,
        checkpoint={"every_n_batches": 40},
        **kw,
    )


def submit(stack, spec) -> str:
    status, job = stack.http("POST", "/api/v1/jobs", spec)
    assert status == 201, job
    return job["id"]


def reference_weights(stack, spec, tmp_path):
    """Train the same spec without interruption on whichever worker is up."""
    job_id = submit(stack, spec)
    done = stack.wait_state(job_id, ["succeeded", "failed"], timeout=300)
    assert done["state"] == "succeeded", done["error"]
    return model_weights(stack, job_id, tmp_path), metric_rows(stack, job_id, "epoch")


def checkpoints(stack, job_id):
    return stack.http("GET", f"/api/v1/jobs/{job_id}/checkpoints")[1]["checkpoints"]


def attempts(stack, job_id):
    return stack.http("GET", f"/api/v1/jobs/{job_id}/attempts")[1]["attempts"]


def assert_same_run(stack, job_id, ref, tmp_path):
    weights, epochs = ref
    for a, b in zip(weights, model_weights(stack, job_id, tmp_path), strict=True):
        np.testing.assert_array_equal(a, b)
    got = metric_rows(stack, job_id, "epoch")
    assert [r["logs"] for r in got] == [r["logs"] for r in epochs]
    batch = metric_rows(stack, job_id, "batch")
    spe = stack.job(job_id)["progress"]["steps_per_epoch"]
    assert [r["step"] for r in batch] == list(range(1, EPOCHS * spe + 1))


@pytest.mark.parametrize("moment", ["mid-epoch", "after-checkpoint"])
def test_sigkilled_worker_job_resumes_elsewhere_bit_identical(stack, s3, tmp_path, moment):
    stack.start_api()
    stack.start_reaper()
    w1 = stack.start_worker("w1")
    spec = long_spec(s3)
    ref = reference_weights(stack, spec, tmp_path)
    job_id = submit(stack, spec)
    if moment == "after-checkpoint":
        wait_for(lambda: checkpoints(stack, job_id), 120, 0.05, "first checkpoint")
    else:
        wait_for(lambda: stack.job(job_id)["progress"]["step"] > 250, 120, 0.05, "progress")
    saved = max(c["step"] for c in checkpoints(stack, job_id) or [{"step": 0}])
    stack.kill(w1, signal.SIGKILL)
    w1.wait(10)
    stack.start_worker("w2")
    done = stack.wait_state(job_id, ["succeeded", "failed"], timeout=300)
    assert done["state"] == "succeeded", done["error"]
    tried = attempts(stack, job_id)
    assert [a["state"] for a in tried] == ["lost", "succeeded"]
    assert tried[1]["resumed_from_step"] >= max(saved, 40)
    assert tried[1]["resumed_from_step"] % 40 == 0
    assert tried[1]["worker"].startswith("w2")
    assert_same_run(stack, job_id, ref, tmp_path)


def test_sigterm_checkpoints_and_hands_the_job_back(stack, s3, tmp_path):
    stack.start_api()
    stack.start_reaper()
    w1 = stack.start_worker("w1")
    spec = long_spec(s3)
    ref = reference_weights(stack, spec, tmp_path)
    job_id = submit(stack, spec)
    wait_for(lambda: stack.job(job_id)["progress"]["step"] > 150, 120, 0.05, "progress")
    stack.kill(w1, signal.SIGTERM)
    assert w1.wait(30) is not None  # well inside a 30 s grace period
    job = stack.job(job_id)
    assert job["state"] == "queued"
    tried = attempts(stack, job_id)
    assert [a["state"] for a in tried] == ["preempted"]
    saved = max(c["step"] for c in checkpoints(stack, job_id))
    assert saved >= tried[0]["last_step"] - 1
    stack.start_worker("w2")
    done = stack.wait_state(job_id, ["succeeded", "failed"], timeout=300)
    assert done["state"] == "succeeded", done["error"]
    tried = attempts(stack, job_id)
    assert tried[1]["resumed_from_step"] == saved
    assert_same_run(stack, job_id, ref, tmp_path)


def test_frozen_worker_cannot_commit_after_losing_its_lease(stack, s3, tmp_path):
    stack.start_api()
    stack.start_reaper()
    w1 = stack.start_worker("w1")
    spec = long_spec(s3)
    ref = reference_weights(stack, spec, tmp_path)
    job_id = submit(stack, spec)
    wait_for(lambda: checkpoints(stack, job_id), 120, 0.05, "first checkpoint")
    stack.kill(w1, signal.SIGSTOP)  # a zombie: alive, but silent
    try:
        wait_for(
            lambda: stack.job(job_id)["state"] == "queued" or stack.job(job_id)["attempts"] > 1,
            60,
            0.2,
            "requeue",
        )
        stack.start_worker("w2")
        wait_for(
            lambda: stack.job(job_id)["attempts"] >= 2 and stack.job(job_id)["state"] == "running",
            120,
            0.2,
            "second attempt",
        )
    finally:
        stack.kill(w1, signal.SIGCONT)
    done = stack.wait_state(job_id, ["succeeded", "failed"], timeout=300)
    assert done["state"] == "succeeded", done["error"]
    tried = attempts(stack, job_id)
    assert tried[0]["state"] == "lost" and tried[-1]["state"] == "succeeded"
    # Every checkpoint committed after the zombie lost its lease is the live attempt's.
    late = [c for c in checkpoints(stack, job_id) if c["created_at"] > tried[0]["ended_at"]]
    assert late and {c["attempt_id"] for c in late} <= {a["id"] for a in tried[1:]}
    assert_same_run(stack, job_id, ref, tmp_path)
    assert "lease lost" in stack.tail("w1", 200000)


def test_poison_job_fails_after_max_attempts(stack, s3):
    stack.start_api()
    stack.start_reaper()
    spec = long_spec(s3, max_attempts=2)
    job_id = submit(stack, spec)
    for n in (1, 2):
        w = stack.start_worker(f"w{n}")
        wait_for(
            lambda n=n: (
                stack.job(job_id)["attempts"] == n and stack.job(job_id)["state"] == "running"
            ),
            120,
            0.1,
            f"attempt {n}",
        )
        stack.kill(w, signal.SIGKILL)  # the job "kills its worker" every time
        w.wait(10)
    done = stack.wait_state(job_id, ["failed"], timeout=60)
    assert done["error"]["code"] == "max_attempts_exceeded"
    assert "max_attempts=2" in done["error"]["message"]
    assert [a["state"] for a in attempts(stack, job_id)] == ["lost", "lost"]


def validation_spec(s3):
    """Validation nine times the size of training: seconds per epoch."""
    spec = mlp_spec(
        upload_blobs(s3, n=20000, features=16),
        features=16,
        hidden=32,
        epochs=4,
        batch_size=8,
        checkpoint={"every_n_batches": 40},
    )
    spec["fit"]["validation_split"] = 0.9
    return spec


def wait_for_validation(stack, job_id, epochs: int = 4) -> int:
    """Wait until an epoch's batches are done but its row is not; returns epochs done."""

    def validating():
        job = stack.job(job_id)
        spe, step = job["progress"]["steps_per_epoch"], job["progress"]["step"]
        if not spe or step == 0 or step % spe or step // spe >= epochs:
            return False
        return step // spe if len(metric_rows(stack, job_id, "epoch")) < step // spe else False

    return wait_for(validating, 120, 0.05, "an epoch's validation")


def test_sigkill_during_validation(stack, s3, tmp_path):
    """A kill when an epoch's batches are done but its row is not lands in its validation."""
    stack.start_api()
    stack.start_reaper()
    w1 = stack.start_worker("w1")
    spec = validation_spec(s3)
    ref_id = submit(stack, spec)
    assert stack.wait_state(ref_id, ["succeeded", "failed"], 300)["state"] == "succeeded"
    job_id = submit(stack, spec)
    epochs_done = wait_for_validation(stack, job_id)
    stack.kill(w1, signal.SIGKILL)
    w1.wait(10)
    stack.start_worker("w2")
    done = stack.wait_state(job_id, ["succeeded", "failed"], timeout=300)
    assert done["state"] == "succeeded", done["error"]
    tried = attempts(stack, job_id)
    assert [a["state"] for a in tried] == ["lost", "succeeded"]
    spe = done["progress"]["steps_per_epoch"]
    # The epoch that was validating is trained (and validated) again.
    assert tried[1]["resumed_from_step"] < epochs_done * spe
    for a, b in zip(
        model_weights(stack, ref_id, tmp_path), model_weights(stack, job_id, tmp_path), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    assert [r["logs"] for r in metric_rows(stack, job_id, "epoch")] == [
        r["logs"] for r in metric_rows(stack, ref_id, "epoch")
    ]


def test_sigterm_during_validation_abandons_it_and_resumes_bit_identical(stack, s3, tmp_path):
    """SIGTERM in a validation pass: the worker stops it, checkpoints the state after the
    epoch's last batch, hands the job back and exits; the resumed job redoes the pass."""
    stack.start_api()
    stack.start_reaper()
    w1 = stack.start_worker("w1")
    spec = validation_spec(s3)
    ref_id = submit(stack, spec)
    assert stack.wait_state(ref_id, ["succeeded", "failed"], 300)["state"] == "succeeded"
    job_id = submit(stack, spec)
    epochs_done = wait_for_validation(stack, job_id)
    asked = time.monotonic()
    stack.kill(w1, signal.SIGTERM)
    assert w1.wait(10) is not None  # the bound: well inside a 30 s grace period
    print(f"SIGTERM during validation: worker exited after {time.monotonic() - asked:.1f}s")
    assert "abandoned" in stack.tail("w1", 200000)
    assert stack.job(job_id)["state"] == "queued"
    spe = stack.job(job_id)["progress"]["steps_per_epoch"]
    newest = max(checkpoints(stack, job_id), key=lambda c: c["step"])
    assert (newest["step"], newest["epoch"], newest["batch"]) == (
        epochs_done * spe,
        epochs_done - 1,
        spe,
    )  # after the last batch, not validated
    assert not any(k.startswith("val_") for k in newest["logs"])
    stack.start_worker("w2")
    done = stack.wait_state(job_id, ["succeeded", "failed"], timeout=300)
    assert done["state"] == "succeeded", done["error"]
    tried = attempts(stack, job_id)
    assert [a["state"] for a in tried] == ["preempted", "succeeded"]
    assert tried[1]["resumed_from_step"] == epochs_done * spe
    for a, b in zip(
        model_weights(stack, ref_id, tmp_path), model_weights(stack, job_id, tmp_path), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    assert [r["logs"] for r in metric_rows(stack, job_id, "epoch")] == [
        r["logs"] for r in metric_rows(stack, ref_id, "epoch")
    ]
