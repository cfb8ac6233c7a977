"""The spine, end to end: HTTP submission, a separate worker process, SQL metrics, S3 objects."""

from __future__ import annotations

from urllib.parse import urlparse

import numpy as np
import pytest

from tests.integration.jobs_helpers import metric_rows, model_weights, s3_keys, upload_blobs
from tests.specs import mlp_spec

pytestmark = pytest.mark.slow


def test_job_trains_on_a_worker_with_metrics_checkpoints_and_model(stack, s3, tmp_path):
    stack.start_api()
    stack.start_worker("w1")
    spec = mlp_spec(upload_blobs(s3), epochs=3, checkpoint={"keep_last": 5})
    status, job = stack.http("POST", "/api/v1/jobs", spec)
    assert status == 201, job
    done = stack.wait_state(job["id"], ["succeeded", "failed"], timeout=240)
    assert done["state"] == "succeeded", done["error"]
    spe = done["progress"]["steps_per_epoch"]
    assert spe == 6  # 96 training samples in batches of 16
    batch = metric_rows(stack, job["id"], "batch")
    epoch = metric_rows(stack, job["id"], "epoch")
    assert [r["step"] for r in batch] == list(range(1, 3 * spe + 1))
    assert [r["epoch"] for r in epoch] == [0, 1, 2]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(epoch[-1]["logs"])
    assert {"loss", "accuracy"} <= set(batch[0]["logs"])

    status, body = stack.http("GET", f"/api/v1/jobs/{job['id']}/checkpoints")
    assert status == 200
    steps = [c["step"] for c in body["checkpoints"]]
    assert steps == [spe, 2 * spe, 3 * spe]
    for cp in body["checkpoints"]:
        prefix = urlparse(cp["uri"]).path.lstrip("/")
        keys = s3_keys(s3, prefix)
        assert sorted(k.rsplit("/", 1)[1] for k in keys) == [
            "model.keras",
            "state.json",
            "state.npz",
        ]
    final_keys = [k for k in s3_keys(s3, "runs/") if k.endswith(f"{job['id']}/model.keras")]
    assert len(final_keys) == 1

    weights = model_weights(stack, job["id"], tmp_path)
    assert len(weights) == 8  # 2 Dense kernels+biases, BatchNormalization's 4
    assert all(np.isfinite(w).all() for w in weights)
    status, attempts = stack.http("GET", f"/api/v1/jobs/{job['id']}/attempts")
    assert [a["state"] for a in attempts["attempts"]] == ["succeeded"]


def test_cancel_stops_a_running_job_within_seconds(stack, s3):
    import time

    stack.start_api()
    stack.start_worker("w1")
    spec = mlp_spec(upload_blobs(s3, n=2000), epochs=500, batch_size=8)
    status, job = stack.http("POST", "/api/v1/jobs", spec)
    assert status == 201
    stack.wait_state(job["id"], "running", timeout=120)
    from tests.integration.stack import wait_for

    wait_for(lambda: stack.job(job["id"])["progress"]["step"] > 0, 120, 0.2, "training started")
    status, body = stack.http("POST", f"/api/v1/jobs/{job['id']}/cancel")
    assert status in (200, 202), body
    asked = time.monotonic()
    done = stack.wait_state(job["id"], ["cancelled", "succeeded", "failed"], timeout=30)
    assert done["state"] == "cancelled"
    assert time.monotonic() - asked < 15
    assert done["progress"]["step"] < 500 * done["progress"]["steps_per_epoch"]
    status, _ = stack.http("POST", f"/api/v1/jobs/{job['id']}/cancel")
    assert status == 409


def test_bad_data_location_fails_the_job_with_a_code(stack, s3):
    """Data that is missing at submit is a 422; data deleted after submit fails the job."""
    stack.start_api()
    spec = mlp_spec(f"s3://{s3.bucket}/data/missing/train.npz", epochs=1)
    status, body = stack.http("POST", "/api/v1/jobs", spec)
    assert status == 422 and body["error"]["code"] == "data_not_found", body
    url = upload_blobs(s3)
    status, job = stack.http("POST", "/api/v1/jobs", mlp_spec(url, epochs=1))
    assert status == 201, job
    s3.client().delete_object(Bucket=s3.bucket, Key=urlparse(url).path.lstrip("/"))
    stack.start_worker("w1")
    done = stack.wait_state(job["id"], ["succeeded", "failed"], timeout=120)
    assert done["state"] == "failed"
    assert done["error"]["code"] == "data_not_found"
    assert urlparse(url).path in done["error"]["message"]
