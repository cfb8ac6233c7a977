"""Infrastructure faults mid-job: the object store, the database and the broker go away
and come back. Jobs keep going or resume; nothing is lost; metric rows reach the
database once it is back, exactly once. Outages are made with a loopback TCP proxy in
front of each service (tests/integration/faultproxy.py), never by stopping shared servers.
"""

from __future__ import annotations

import signal
import time
import uuid
from urllib.parse import urlparse

import numpy as np
import pytest
from stack import Stack, wait_for

from tests.integration.faultproxy import FaultProxy
from tests.integration.jobs_helpers import metric_rows, model_weights, s3_keys, upload_blobs
from tests.specs import mlp_spec

pytestmark = pytest.mark.slow

EPOCHS = 10


@pytest.fixture
def proxies(stack_env):
    made = {}
    for name, var in (
        ("db", "DATABASE_URL"),
        ("broker", "CELERY_BROKER_URL"),
        ("s3", "AWS_ENDPOINT_URL_S3"),
    ):
        url = urlparse(stack_env[var])
        made[name] = FaultProxy(url.hostname, url.port)
    yield made
    for proxy in made.values():
        proxy.close()


@pytest.fixture
def faulty(stack_env, proxies, tmp_path):
    """A stack whose processes reach PostgreSQL, Redis and S3 through the proxies."""
    env = dict(stack_env)
    for name, var in (
        ("db", "DATABASE_URL"),
        ("broker", "CELERY_BROKER_URL"),
        ("s3", "AWS_ENDPOINT_URL_S3"),
    ):
        url = urlparse(env[var])
        env[var] = url._replace(
            netloc=url.netloc.replace(f"{url.hostname}:{url.port}", proxies[name].url_host())
        ).geturl()
    env["FITFLEET_REDISPATCH_SECONDS"] = "3"
    s = Stack(env, tmp_path / "faulty-logs")
    try:
        yield s
    finally:
        s.stop_all()


def spec_for(s3):
    return mlp_spec(
        upload_blobs(s3, n=2000, features=16),
        features=16,
        hidden=32,
        epochs=EPOCHS,
        batch_size=8,
        checkpoint={"every_n_batches": 40},
    )


def submit(stack, spec) -> str:
    status, job = stack.http("POST", "/api/v1/jobs", spec)
    assert status == 201, job
    return job["id"]


def assert_exactly_once(stack, job_id):
    spe = stack.job(job_id)["progress"]["steps_per_epoch"]
    assert [r["step"] for r in metric_rows(stack, job_id, "batch")] == list(
        range(1, EPOCHS * spe + 1)
    )
    assert [r["epoch"] for r in metric_rows(stack, job_id, "epoch")] == list(range(EPOCHS))


def test_object_store_unreachable_for_30s(faulty, proxies, s3, tmp_path):
    faulty.start_api()
    faulty.start_worker("w1")
    job_id = submit(faulty, spec_for(s3))
    wait_for(
        lambda: faulty.http("GET", f"/api/v1/jobs/{job_id}/checkpoints")[1]["checkpoints"],
        120,
        0.05,
        "first checkpoint",
    )
    proxies["s3"].cut()
    time.sleep(30)
    assert faulty.job(job_id)["state"] == "running"  # training went on without the store
    proxies["s3"].restore()
    done = faulty.wait_state(job_id, ["succeeded", "failed"], timeout=240)
    assert done["state"] == "succeeded", done["error"]
    assert_exactly_once(faulty, job_id)
    cps = faulty.http("GET", f"/api/v1/jobs/{job_id}/checkpoints")[1]["checkpoints"]
    for cp in cps:  # every committed checkpoint has all its objects
        assert len(s3_keys(s3, urlparse(cp["uri"]).path.lstrip("/") + "/")) == 3
    assert all(np.isfinite(w).all() for w in model_weights(faulty, job_id, tmp_path))


def test_database_outage_mid_job(faulty, proxies, s3, tmp_path):
    faulty.start_api()
    faulty.start_reaper()
    faulty.start_worker("w1")
    spec = spec_for(s3)
    ref_id = submit(faulty, spec)
    assert faulty.wait_state(ref_id, ["succeeded", "failed"], 300)["state"] == "succeeded"
    job_id = submit(faulty, spec)
    wait_for(lambda: faulty.job(job_id)["progress"]["step"] > 100, 120, 0.05, "progress")
    proxies["db"].cut()
    time.sleep(8)  # longer than the lease: the reaper may hand the job on once it is back
    proxies["db"].restore()
    done = faulty.wait_state(job_id, ["succeeded", "failed"], timeout=300)
    assert done["state"] == "succeeded", done["error"]
    assert_exactly_once(faulty, job_id)
    for a, b in zip(
        model_weights(faulty, ref_id, tmp_path),
        model_weights(faulty, job_id, tmp_path),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)


def test_broker_restart_loses_messages_and_jobs_still_run(faulty, proxies, s3, tmp_path):
    import redis

    faulty.start_api()
    faulty.start_reaper()
    running_id = None
    w1 = faulty.start_worker("w1")
    running_id = submit(faulty, spec_for(s3))
    wait_for(lambda: faulty.job(running_id)["progress"]["step"] > 50, 120, 0.05, "progress")
    waiting_id = submit(faulty, mlp_spec(upload_blobs(s3), epochs=2, queue="later"))
    proxies["broker"].cut()
    client = redis.Redis.from_url(
        faulty.env["CELERY_BROKER_URL"].replace(proxies["broker"].url_host(), "127.0.0.1:6379")
    )
    client.flushdb()  # a restart without persistence: every message is gone
    client.close()
    time.sleep(5)
    proxies["broker"].restore()
    done = faulty.wait_state(running_id, ["succeeded", "failed"], timeout=300)
    assert done["state"] == "succeeded", done["error"]
    assert_exactly_once(faulty, running_id)
    assert faulty.job(waiting_id)["state"] == "queued"  # no worker serves "later" yet
    faulty.start_worker("w2", queues="later")
    done = faulty.wait_state(waiting_id, ["succeeded", "failed"], timeout=180)
    assert done["state"] == "succeeded", done["error"]
    assert w1.poll() is None  # the worker rode out the broker outage
    assert uuid.UUID(hex=waiting_id)


def test_sigkill_during_a_checkpoint_upload(faulty, proxies, s3, tmp_path):
    """The store stops answering, an upload retries, the worker is killed mid-upload: the
    next attempt resumes from the last committed checkpoint, bit-identical."""
    faulty.start_api()
    faulty.start_reaper()
    w1 = faulty.start_worker("w1")
    spec = spec_for(s3)
    ref_id = submit(faulty, spec)
    assert faulty.wait_state(ref_id, ["succeeded", "failed"], 300)["state"] == "succeeded"
    job_id = submit(faulty, spec)
    wait_for(
        lambda: faulty.http("GET", f"/api/v1/jobs/{job_id}/checkpoints")[1]["checkpoints"],
        120,
        0.05,
        "first checkpoint",
    )
    proxies["s3"].cut()
    wait_for(lambda: "checkpoint upload" in faulty.tail("w1", 10**6), 60, 0.2, "upload retry")
    committed = faulty.http("GET", f"/api/v1/jobs/{job_id}/checkpoints")[1]["checkpoints"]
    faulty.kill(w1, signal.SIGKILL)
    w1.wait(10)
    proxies["s3"].restore()
    faulty.start_worker("w2")
    done = faulty.wait_state(job_id, ["succeeded", "failed"], timeout=300)
    assert done["state"] == "succeeded", done["error"]
    tried = faulty.http("GET", f"/api/v1/jobs/{job_id}/attempts")[1]["attempts"]
    assert tried[1]["resumed_from_step"] == max(c["step"] for c in committed)
    assert_exactly_once(faulty, job_id)
    for a, b in zip(
        model_weights(faulty, ref_id, tmp_path),
        model_weights(faulty, job_id, tmp_path),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
