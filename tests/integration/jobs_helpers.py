"""Helpers for end-to-end tests: upload data to the S3 test bucket, read results back."""

from __future__ import annotations

import uuid

import numpy as np

from tests.specs import blobs, npz_bytes


def upload_blobs(s3, n: int = 120, features: int = 6, seed: int = 0) -> str:
    """Put a generated ``.npz`` into the bucket; returns its ``s3://`` URL."""
    x, y = blobs(n=n, features=features, seed=seed)
    key = f"data/{uuid.uuid4().hex[:10]}/train.npz"
    s3.client().put_object(Bucket=s3.bucket, Key=key, Body=npz_bytes(x, y))
    return f"s3://{s3.bucket}/{key}"


def model_weights(stack, job_id: str, tmp_path) -> list[np.ndarray]:
    """Download the job's final model over HTTP and load it with plain Keras."""
    import keras

    status, body = stack.http("GET", f"/api/v1/jobs/{job_id}/model")
    assert status == 200, body
    path = tmp_path / f"{job_id}.keras"
    path.write_bytes(body if isinstance(body, bytes) else bytes(body))
    return [w.numpy() for w in keras.models.load_model(path).weights]


def metric_rows(stack, job_id: str, kind: str) -> list[dict]:
    """Every metric row of a kind, read through the cursor API page by page."""
    rows, after = [], None
    while True:
        query = f"kind={kind}" + (f"&after={after}" if after is not None else "")
        status, body = stack.http("GET", f"/api/v1/jobs/{job_id}/metrics?{query}")
        assert status == 200, body
        if not body["rows"]:
            return rows
        rows.extend(body["rows"])
        after = body["next"]


def s3_keys(s3, prefix: str) -> list[str]:
    out = s3.client().list_objects_v2(Bucket=s3.bucket, Prefix=prefix)
    return [o["Key"] for o in out.get("Contents", [])]
