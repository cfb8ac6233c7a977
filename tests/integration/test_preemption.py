"""Priority preemption and project quotas with real worker processes (PostgreSQL, Redis,
moto's S3): a job of higher priority takes a full fleet within 15 s, and every job that
gave way ends bit-identical to an uninterrupted run, with one metric row per step; a job
at its project's quota waits, saying so; the thrash guard holds."""

from __future__ import annotations

import subprocess
import time
from datetime import datetime

import numpy as np
import pytest

from tests.integration.jobs_helpers import metric_rows, model_weights, upload_blobs
from tests.integration.stack import PYTHON, wait_for
from tests.integration.test_fair_share import start_standins
from tests.specs import mlp_spec

pytestmark = pytest.mark.slow


def long_spec(data: str, epochs: int = 3, **kw) -> dict:
    """A tiny MLP over 2,000 samples (200 steps an epoch): long enough to preempt."""
    return mlp_spec(
        data,
        features=16,
        hidden=32,
        epochs=epochs,
        batch_size=8,
        checkpoint={"every_n_batches": 100},
        **kw,
    )


def short_spec(data: str, **kw) -> dict:
    return mlp_spec(data, epochs=1, **{"name": "urgent", **kw})


def submit(stack, spec: dict) -> str:
    # An API process's first submit loads Keras to validate the spec: slow on a busy machine.
    status, job = stack.http("POST", "/api/v1/jobs", spec, timeout=180)
    assert status == 201, job
    return job["id"]


def create(stack, *specs: dict) -> list[str]:
    """Store and enqueue jobs at once, as a submit does after its checks: the jobs start
    together (an API process that validates its first spec may take seconds to load Keras)."""
    from service.admission.spec import normalize
    from service.core.config import Settings
    from service.core.dispatch import enqueue
    from service.store.jobs import JobStore

    settings = Settings.from_env(stack.env)
    jobs = JobStore(settings.database_url)
    ids = []
    for spec in specs:
        spec = normalize(spec, settings)
        job = jobs.create(spec, epochs=spec["fit"]["epochs"], summary=None, max_attempts=3)
        ids.append(job["id"])
    for job_id, spec in zip(ids, specs, strict=True):
        enqueue(
            settings.broker_url,
            settings.home,
            job_id,
            spec.get("queue", "default"),
            spec.get("priority", 0),
        )
    return ids


def attempts(stack, job_id: str) -> list[dict]:
    return stack.http("GET", f"/api/v1/jobs/{job_id}/attempts")[1]["attempts"]


def ran_for(stack, job_id: str) -> float:
    """Seconds the job's current attempt has been running (0 when not running)."""
    job = stack.job(job_id)
    if job["state"] != "running":
        return 0.0
    started = datetime.fromisoformat(attempts(stack, job_id)[-1]["started_at"])
    return time.time() - started.timestamp()


def assert_same_run(stack, job_id: str, ref_id: str, tmp_path) -> None:
    """Weights bit-identical to the reference job's, and one batch row per step."""
    for a, b in zip(
        model_weights(stack, ref_id, tmp_path), model_weights(stack, job_id, tmp_path), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    epochs = [r["logs"] for r in metric_rows(stack, job_id, "epoch")]
    assert epochs == [r["logs"] for r in metric_rows(stack, ref_id, "epoch")]
    progress = stack.job(job_id)["progress"]
    steps = [r["step"] for r in metric_rows(stack, job_id, "batch")]
    assert steps == list(range(1, progress["total_steps"] + 1))


def test_a_high_priority_job_takes_a_full_fleet_within_15_s(stack, s3, tmp_path):
    """Default preemption settings; two workers busy with jobs of priority 0 and 1."""
    stack.start_api()
    stack.start_reaper()
    stack.start_worker("w1")
    stack.start_worker("w2")
    data = upload_blobs(s3, n=2000, features=16)
    reference, victim = create(
        stack,
        # 6,000 steps: neither ends and frees its worker while the urgent job waits
        long_spec(data, epochs=30, priority=1, name="reference"),
        long_spec(data, epochs=30, priority=0, name="victim"),
    )
    wait_for(  # a full fleet, each job past FITFLEET_PREEMPT_MIN_SECONDS (5 s)
        lambda: min(ran_for(stack, reference), ran_for(stack, victim)) > 6,
        180,
        0.2,
        "both jobs running for 6 s",
    )
    (waiting,) = create(stack, short_spec(upload_blobs(s3), priority=0, name="waiting"))
    assert "busy" in stack.job(waiting)["waiting"]
    (urgent,) = create(stack, short_spec(upload_blobs(s3), priority=5))
    created = datetime.fromisoformat(stack.job(urgent)["created_at"]).timestamp()
    wait_for(lambda: stack.job(urgent)["progress"]["step"] > 0, 60, 0.1, "a first batch")
    started = datetime.fromisoformat(attempts(stack, urgent)[0]["started_at"]).timestamp()
    assert started - created < 15  # claimed within 15 s of its submission
    job = stack.job(victim)
    assert job["preemptions"] == 1 and stack.job(reference)["preemptions"] == 0
    assert attempts(stack, victim)[0]["error"]["message"] == (
        "a job of higher priority needed the worker"
    )
    for job_id in (urgent, reference, victim, waiting):
        done = stack.wait_state(job_id, ["succeeded", "failed"], timeout=300)
        assert done["state"] == "succeeded", done["error"]
    tried = attempts(stack, victim)
    assert [a["state"] for a in tried] == ["preempted", "succeeded"]
    assert tried[1]["resumed_from_step"] >= tried[0]["last_step"] - 1  # checkpointed at once
    # it kept its place by age: resumed before the job of its priority submitted after it
    assert tried[1]["started_at"] <= attempts(stack, waiting)[0]["started_at"]
    assert_same_run(stack, victim, reference, tmp_path)


def test_a_job_preempted_three_times_ends_bit_identical(stack, s3, tmp_path):
    """One worker serves the reference's queue; the victim and the urgent jobs share the other."""
    stack.env.update(
        {"FITFLEET_PREEMPT_MIN_SECONDS": "1", "FITFLEET_PREEMPT_COOLDOWN_SECONDS": "1"}
    )
    stack.start_api()
    stack.start_reaper()
    stack.start_worker("wref", queues="ref")
    stack.start_worker("wmain", queues="main")
    data = upload_blobs(s3, n=2000, features=16)
    reference, victim = create(
        stack,
        # 2,400 steps: on a fast machine fewer end before the third urgent job is handed out
        long_spec(data, epochs=12, queue="ref", name="reference"),
        long_spec(data, epochs=12, queue="main", name="victim"),
    )
    small = upload_blobs(s3)
    for round_ in range(3):
        wait_for(lambda: ran_for(stack, victim) > 1.5, 180, 0.1, "the victim training")
        before = stack.job(victim)["progress"]["step"]
        (urgent,) = create(stack, short_spec(small, queue="main", priority=5))
        done = stack.wait_state(urgent, ["succeeded", "failed"], timeout=180)
        assert done["state"] == "succeeded", done["error"]
        job = stack.job(victim)
        assert job["preemptions"] == round_ + 1
        assert job["progress"]["step"] >= before
    for job_id in (reference, victim):
        done = stack.wait_state(job_id, ["succeeded", "failed"], timeout=300)
        assert done["state"] == "succeeded", done["error"]
    tried = attempts(stack, victim)
    assert [a["state"] for a in tried] == ["preempted"] * 3 + ["succeeded"]
    assert_same_run(stack, victim, reference, tmp_path)


def test_a_project_at_its_quota_waits_and_says_why(stack, s3):
    """Real Keras jobs on two workers: vision may run one job at a time, nlp takes the other
    worker; the quota is set over the API and shown by the API and `fitfleet status`."""
    stack.start_api()
    admin = stack.token
    status, body = stack.http("PUT", "/api/v1/projects/vision", {"max_running": 1})
    assert status == 200 and body["max_running"] == 1, body
    nlp_token = stack.token = stack.create_token("nlp", admin=False)
    status, body = stack.http("PUT", "/api/v1/projects/nlp", {"weight": 5})
    assert status == 403 and body["error"]["code"] == "forbidden"
    vision_token = stack.create_token("vision", admin=False)
    data = upload_blobs(s3)
    spec = mlp_spec(data, epochs=2, name="v")
    stack.token = vision_token
    first, second = submit(stack, spec), submit(stack, spec)
    stack.token = nlp_token
    other = submit(stack, mlp_spec(data, epochs=2, name="n"))
    stack.token = admin
    stack.start_worker("w1")
    stack.start_worker("w2")
    wait_for(lambda: stack.job(other)["state"] != "queued", 180, 0.2, "the nlp job started")
    assert stack.job(first)["state"] != "queued"
    waiting = stack.job(second)
    assert waiting["state"] == "queued"
    assert waiting["waiting"] == "project vision is at its quota of 1 running job"
    cli = subprocess.run(
        [PYTHON, "-m", "fitfleet", "status", second],
        env={**stack.env, "FITFLEET_TOKEN": admin},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "waiting:    project vision is at its quota of 1 running job" in cli.stdout, cli
    fleet = stack.http("GET", "/api/v1/fleet")[1]
    shares = {p["name"]: p for p in fleet["projects"]}
    assert shares["vision"]["running"] == 1 and shares["vision"]["max_running"] == 1
    assert shares["nlp"]["running"] == 1 and shares["vision"]["queued"] == 1
    for job_id in (first, other, second):
        done = stack.wait_state(job_id, ["succeeded", "failed"], timeout=180)
        assert done["state"] == "succeeded", done["error"]
    starts = {j: attempts(stack, j)[0]["started_at"] for j in (first, second, other)}
    ends = {j: attempts(stack, j)[0]["ended_at"] for j in (first, second, other)}
    assert starts[second] >= ends[first]  # never two vision jobs at once


def test_thrash_guard_two_urgent_jobs_in_a_row(stack):
    """Stand-in workers (no TensorFlow): one worker, a long job, then two urgent ones; the
    long job gives way to the first only, and the second waits out its cooldown."""
    stack.env.update(
        {"FITFLEET_PREEMPT_MIN_SECONDS": "0.5", "FITFLEET_PREEMPT_COOLDOWN_SECONDS": "60"}
    )
    from service.core.dispatch import enqueue
    from service.store.jobs import JobStore

    url = stack.env["DATABASE_URL"]
    jobs = JobStore(url)

    def job(priority: int, seconds: float) -> str:
        spec = {"name": "j", "queue": "default", "priority": priority, "standin_seconds": seconds}
        made = jobs.create(spec, epochs=1, summary=None, max_attempts=3)
        enqueue(stack.env["CELERY_BROKER_URL"], stack.env["FITFLEET_HOME"], made["id"], "default")
        return made["id"]

    start_standins(stack, 1)
    stack.start_reaper()
    long = job(0, 8.0)
    wait_for(lambda: jobs.get(long)["state"] == "running", 120, 0.1, "the long job running")
    time.sleep(1)
    first = job(5, 0.5)
    wait_for(lambda: jobs.get(first)["state"] == "succeeded", 60, 0.1, "the first urgent job")
    wait_for(lambda: jobs.get(long)["state"] == "running", 60, 0.1, "the long job resumed")
    time.sleep(1)  # past FITFLEET_PREEMPT_MIN_SECONDS again: only the cooldown protects it
    second = job(5, 0.5)
    time.sleep(3)  # six reaper sweeps
    assert jobs.get(long)["preemptions"] == 1
    assert jobs.get(long)["state"] == "running"
    assert jobs.get(second)["waiting"] == "the one worker of queue default is busy"
    wait_for(lambda: jobs.get(second)["state"] == "succeeded", 60, 0.2, "the second urgent job")
    assert jobs.get(long)["state"] == "succeeded"  # the second one waited for its end
    assert [a["state"] for a in jobs.attempts(long)] == ["preempted", "succeeded"]
