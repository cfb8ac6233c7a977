"""A job's story with real worker processes: killed once, preempted once, then finished.

Its event timeline must tell exactly that, in order; its goodput split must add up to its
wall time; the steps it redid must be those of the attempts endpoint. And a job whose
data has the wrong shape for its model fails with Keras's own words in its log lines.
"""

from __future__ import annotations

import signal
import threading

import numpy as np
import pytest

from service.admission.spec import normalize
from service.store import worklogs
from service.store.jobs import JobStore
from tests.conftest import embedded_settings
from tests.integration.jobs_helpers import upload_blobs
from tests.integration.stack import wait_for
from tests.specs import blobs, mlp_spec

pytestmark = pytest.mark.slow


def story(events: list[dict]) -> list[tuple]:
    """(type, attempt) of each event, a run of checkpoints and validations as one."""
    out = []
    for e in events:
        item = (e["type"], e["attempt"])
        if e["type"] == "validated":
            continue
        if item != (out[-1] if out else None) or e["type"] != "checkpoint":
            out.append(item)
    return out


def test_killed_once_and_preempted_once_tells_that_story(stack, s3):
    stack.start_api()
    stack.start_reaper()
    spec = mlp_spec(
        upload_blobs(s3, n=1200, features=16),
        features=16,
        hidden=32,
        epochs=6,
        batch_size=8,
        checkpoint={"every_n_batches": 40},
    )
    status, job = stack.http("POST", "/api/v1/jobs", spec)
    assert status == 201, job
    job_id = job["id"]

    def past(step):
        return lambda: stack.job(job_id)["progress"]["step"] > step

    def checkpointed_past(step):
        cps = stack.http("GET", f"/api/v1/jobs/{job_id}/checkpoints")[1]["checkpoints"]
        return any(c["step"] > step for c in cps)

    w1 = stack.start_worker("w1")
    wait_for(lambda: checkpointed_past(0), 120, 0.05, "a checkpoint")
    wait_for(past(stack.job(job_id)["progress"]["step"] + 15), 120, 0.05, "steps to redo")
    stack.kill(w1, signal.SIGKILL)
    w1.wait(10)
    stack.wait_state(job_id, ["queued"], timeout=60)  # the reaper found it lost
    w2 = stack.start_worker("w2")
    wait_for(lambda: stack.job(job_id)["attempts"] == 2, 120, 0.1, "second attempt")
    wait_for(past(stack.job(job_id)["progress"]["step"] + 60), 120, 0.05, "progress")
    stack.kill(w2, signal.SIGTERM)
    assert w2.wait(30) is not None
    stack.start_worker("w3")
    done = stack.wait_state(job_id, ["succeeded", "failed"], timeout=300)
    assert done["state"] == "succeeded", done["error"]

    events = stack.http("GET", f"/api/v1/jobs/{job_id}/events")[1]["events"]
    assert story(events) == [
        ("submitted", None),
        ("queued", None),
        ("claimed", 1),
        ("first_batch", 1),
        ("checkpoint", 1),
        ("lease_lost", 1),
        ("requeued", 1),
        ("claimed", 2),
        ("restored", 2),
        ("first_batch", 2),
        ("checkpoint", 2),
        ("preempted", 2),
        ("released", 2),
        ("requeued", 2),
        ("claimed", 3),
        ("restored", 3),
        ("first_batch", 3),
        ("checkpoint", 3),
        ("finished", 3),
    ]
    ids = [e["id"] for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    times = [e["at"] for e in events]
    assert times == sorted(times)  # no event out of its place in time
    by = {(e["type"], e["attempt"]): e["data"] for e in events}
    assert by[("claimed", 2)]["worker"].startswith("w2") and by[("claimed", 2)]["host"]
    assert by[("lease_lost", 1)]["code"] == "lease_expired"
    tried = stack.http("GET", f"/api/v1/jobs/{job_id}/attempts")[1]["attempts"]
    assert [a["state"] for a in tried] == ["lost", "preempted", "succeeded"]
    assert by[("restored", 2)]["step"] == tried[1]["resumed_from_step"] > 0
    assert by[("restored", 3)]["step"] == tried[2]["resumed_from_step"]
    assert by[("released", 2)]["step"] == tried[1]["last_step"]
    assert by[("finished", 3)]["state"] == "succeeded"
    # the cursor pages through the same events
    after, paged = 0, []
    while page := stack.http("GET", f"/api/v1/jobs/{job_id}/events?after={after}&limit=5")[1][
        "events"
    ]:
        paged += page
        after = page[-1]["id"]
    assert paged == events

    detail = stack.http("GET", f"/api/v1/jobs/{job_id}/detail")[1]
    split = detail["goodput"]
    assert abs(sum(split["seconds"].values()) - split["wall_seconds"]) < 1.0
    redone = sum(a["steps_redone"] for a in detail["attempts"])
    assert split["steps_redone"] == redone >= 15
    assert [a["steps_redone"] for a in split["attempts"]] == [
        a["steps_redone"] for a in detail["attempts"]
    ]
    s = split["seconds"]
    assert s["redoing"] > 0 and s["lost"] > 0 and s["queued"] > 0 and s["starting"] > 0
    assert s["training"] > 0 and s["validation"] > 0
    assert 0 < split["goodput"] < 1


@pytest.fixture
def wrong_shape_job(db_url, tmp_path):
    """A job whose data was replaced, after it was admitted, by arrays of another width."""
    x, y = blobs()
    path = tmp_path / "train.npz"
    np.savez(path, x=x, y=y)
    settings = embedded_settings(tmp_path, database_url=db_url)
    spec = normalize(mlp_spec(path.as_uri()), settings)
    jobs = JobStore(db_url)
    job = jobs.create(spec, epochs=3, summary=None, max_attempts=1)
    np.savez(path, x=np.concatenate([x, x[:, :2]], axis=1), y=y)
    return settings, jobs, job["id"]


def test_a_job_whose_data_has_the_wrong_shape_logs_kerass_message(wrong_shape_job):
    from workers.training.attempt import Attempt

    settings, jobs, job_id = wrong_shape_job
    claim = jobs.claim(job_id, "w1", settings.lease_seconds)
    assert Attempt(claim, settings, threading.Event()).run() == "failed"
    job = jobs.get(job_id)
    assert job["state"] == "failed" and job["error"]["code"] == "training_error"
    lines = worklogs.read(settings.database_url, job_id, attempt=1)["lines"]
    failure = [line for line in lines if line["level"] == "ERROR"]
    assert len(failure) == 1, lines
    message = failure[0]["message"]
    assert f"job {job_id} failed: training_error" in message
    assert "is incompatible with the layer" in message  # Keras's own words
    assert "expected axis -1 of input shape to have value" in message
    assert "runner.py:" in message and str(settings.home) not in message  # where, no paths
