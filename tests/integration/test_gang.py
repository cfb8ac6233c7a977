"""Multi-worker jobs on real worker processes over loopback: a gang of two trains under
MultiWorkerMirroredStrategy, a SIGKILLed member stops the other within seconds and the job
resumes on a new gang, a SIGTERMed member makes the gang checkpoint and hand the job back,
and the job still ends bit-identical; a gang that can only half form gives its member back
until a second worker is free, and a cancel stops every member."""

from __future__ import annotations

import random
import re
import signal
import time
import uuid

import numpy as np
import pytest
from stack import wait_for

from tests.integration.jobs_helpers import metric_rows, model_weights, upload_blobs
from tests.specs import mlp_spec

pytestmark = pytest.mark.slow

TWO = {"strategy": "multi_worker_mirrored", "workers": 2}


def own_queue() -> str:
    """A queue of the test's own: no other test's worker on the same Redis takes its messages."""
    return f"gang-{uuid.uuid4().hex[:8]}"


def member_env(**extra) -> dict[str, str]:
    """A worker's settings for gangs: loopback address, a port range of its own."""
    base = random.randrange(30000, 60000, 10)
    return {
        "FITFLEET_WORKER_HOST": "127.0.0.1",
        "FITFLEET_WORKER_PORTS": f"{base}-{base + 9}",
        "FITFLEET_COLLECTIVE_TIMEOUT_SECONDS": "3",
        "FITFLEET_GANG_FORM_SECONDS": "20",
        **extra,
    }


def gang_spec(s3, queue: str) -> dict:
    return mlp_spec(
        upload_blobs(s3, n=400, features=6),
        features=6,
        hidden=12,
        epochs=3,
        batch_size=16,
        distribute=TWO,
        checkpoint={"every_n_batches": 5},
        queue=queue,
    )


def settled_attempts(stack, job_id: str) -> list[str]:
    """The states of the job's attempts once none is running (members end after the job)."""

    def states():
        got = [
            a["state"] for a in stack.http("GET", f"/api/v1/jobs/{job_id}/attempts")[1]["attempts"]
        ]
        return got if "running" not in got else None

    return wait_for(states, 60, 0.2, "every member's attempt ends")


def assert_one_row_per_step(stack, job_id: str, steps: int) -> None:
    rows = metric_rows(stack, job_id, "batch")
    assert [r["step"] for r in rows] == list(range(1, steps + 1))


def test_two_member_job_sigkill_and_sigterm_resume_bit_identical(stack, s3, tmp_path):
    stack.start_api()
    stack.start_reaper()
    queue = own_queue()
    stack.start_worker("w1", queue, env=member_env())
    w2 = stack.start_worker("w2", queue, env=member_env())
    spec = gang_spec(s3, queue)
    status, ref = stack.http("POST", "/api/v1/jobs", spec)
    assert status == 201, ref
    done = stack.wait_state(ref["id"], ["succeeded", "failed"], timeout=240)
    assert done["state"] == "succeeded", done["error"]
    assert settled_attempts(stack, ref["id"]) == ["succeeded", "succeeded"]
    assert "MultiWorkerMirroredStrategy: 2 workers" in stack.tail("w1", 10**6)
    steps = 60  # 320 training samples, 16 a batch, 3 epochs
    assert_one_row_per_step(stack, ref["id"], steps)

    status, again = stack.http("POST", "/api/v1/jobs", spec)
    done = stack.wait_state(again["id"], ["succeeded", "failed"], timeout=240)
    assert done["state"] == "succeeded", done["error"]

    status, job = stack.http("POST", "/api/v1/jobs", spec)
    job_id = job["id"]
    wait_for(
        lambda: stack.http("GET", f"/api/v1/jobs/{job_id}/checkpoints")[1]["checkpoints"],
        240,
        0.05,
        "first checkpoint",
    )
    killed = time.monotonic()
    stack.kill(w2, signal.SIGKILL)
    w2.wait(10)
    wait_for(lambda: "peer lost" in stack.tail("w1", 10**6), 30, 0.1, "the other member stops")
    stopped_after = time.monotonic() - killed
    assert stopped_after < 15, stopped_after
    w3 = stack.start_worker("w3", queue, env=member_env())

    # SIGTERM to a member of the new gang: every member checkpoints at the same step and
    # stops, the chief hands the job back, and it resumes on a third gang.
    wait_for(
        lambda: any(r["attempt"] == 2 for r in metric_rows(stack, job_id, "batch")),
        240,
        0.1,
        "training on the second gang",
    )
    stack.kill(w3, signal.SIGTERM)
    w3.wait(120)
    stack.start_worker("w4", queue, env=member_env())
    done = stack.wait_state(job_id, ["succeeded", "failed"], timeout=240)
    assert done["state"] == "succeeded", done["error"]
    assert settled_attempts(stack, job_id) == [
        "lost",
        "lost",
        "preempted",
        "preempted",
        "succeeded",
        "succeeded",
    ]
    attempts = stack.http("GET", f"/api/v1/jobs/{job_id}/attempts")[1]["attempts"]
    assert max(a["resumed_from_step"] for a in attempts) > 0

    weights = [model_weights(stack, j, tmp_path) for j in (ref["id"], again["id"], job_id)]
    for a, b, c in zip(*weights, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    assert_one_row_per_step(stack, job_id, steps)
    assert_one_row_per_step(stack, again["id"], steps)
    epochs = [r["step"] for r in metric_rows(stack, job_id, "epoch")]
    assert epochs == [r["step"] for r in metric_rows(stack, ref["id"], "epoch")]


def test_half_formed_gang_gives_its_member_back_then_a_cancel_stops_both(stack, s3):
    stack.start_api()
    stack.start_reaper()
    queue = own_queue()
    stack.start_worker("w1", queue, env=member_env(FITFLEET_GANG_FORM_SECONDS="2"))
    spec = gang_spec(s3, queue)
    spec["fit"]["epochs"] = 20  # long enough to be cancelled while it trains
    status, job = stack.http("POST", "/api/v1/jobs", spec)
    assert status == 201, job
    wait_for(
        lambda: len(re.findall("giving this worker back", stack.tail("w1", 10**6))) >= 2,
        60,
        0.2,
        "the half-formed gang gives its member back, twice",
    )
    body = stack.job(job["id"])
    assert body["state"] == "queued"
    assert stack.http("GET", f"/api/v1/jobs/{job['id']}/attempts")[1]["attempts"] == []
    stack.start_worker("w2", queue, env=member_env(FITFLEET_GANG_FORM_SECONDS="2"))
    wait_for(lambda: metric_rows(stack, job["id"], "batch"), 240, 0.1, "the gang trains")

    # A cancel reaches every member at the same step: both stop, neither waits for a peer.
    status, _ = stack.http("POST", f"/api/v1/jobs/{job['id']}/cancel")
    assert status in (200, 202)
    asked = time.monotonic()
    done = stack.wait_state(job["id"], ["cancelled", "succeeded", "failed"], timeout=60)
    assert done["state"] == "cancelled", done
    assert settled_attempts(stack, job["id"]) == ["cancelled", "cancelled"]
    assert time.monotonic() - asked < 30
    assert "peer lost" not in stack.tail("w1", 10**6) + stack.tail("w2", 10**6)
