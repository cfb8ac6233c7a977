"""A prefix of shards on S3, streamed by real workers: SIGKILL, resume, same weights, no re-download."""

from __future__ import annotations

import signal
import uuid

import numpy as np
import pytest

from tests.integration.jobs_helpers import metric_rows, model_weights
from tests.integration.stack import wait_for
from tests.specs import blobs, mlp_spec

pytestmark = pytest.mark.slow


def upload_shards(s3, tmp_path, n: int = 1800, features: int = 16) -> tuple[str, str, int]:
    """Four shards (.npz and Parquet) under a fresh prefix, and a validation .npz."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    x, y = blobs(n=n, features=features, seed=3)
    base = f"data/{uuid.uuid4().hex[:10]}"
    cuts = [0, 350, 800, 1100, 1600]
    client = s3.client()
    for i in range(4):
        part, a, b = tmp_path / f"part-{i}", x[cuts[i] : cuts[i + 1]], y[cuts[i] : cuts[i + 1]]
        if i % 2:
            column = pa.FixedSizeListArray.from_arrays(pa.array(a.ravel()), features)
            pq.write_table(pa.table({"x": column, "y": pa.array(b)}), part)
            suffix = "parquet"
        else:
            with open(part, "wb") as f:
                np.savez(f, x=a, y=b)
            suffix = "npz"
        client.upload_file(str(part), s3.bucket, f"{base}/shards/part-{i:03d}.{suffix}")
    with open(tmp_path / "val", "wb") as f:
        np.savez(f, x=x[1600:], y=y[1600:])
    client.upload_file(str(tmp_path / "val"), s3.bucket, f"{base}/val.npz")
    return f"s3://{s3.bucket}/{base}/shards/", f"s3://{s3.bucket}/{base}/val.npz", 4


def submit(stack, spec) -> str:
    status, job = stack.http("POST", "/api/v1/jobs", spec)
    assert status == 201, job
    return job["id"]


def test_streamed_shards_resume_bit_identical_from_the_local_cache(stack, s3, tmp_path):
    stack.start_api()
    stack.start_reaper()
    w1 = stack.start_worker("w1")
    prefix, val, shards = upload_shards(s3, tmp_path)
    spec = mlp_spec(
        prefix, features=16, hidden=32, epochs=6, batch_size=8, checkpoint={"every_n_batches": 40}
    )
    spec["data"]["validation"] = val
    spec["fit"]["validation_split"] = 0.0
    ref_id = submit(stack, spec)
    ref = stack.wait_state(ref_id, ["succeeded", "failed"], timeout=300)
    assert ref["state"] == "succeeded", ref["error"]
    assert stack.tail("w1", 10**6).count("downloaded") == shards + 1

    job_id = submit(stack, spec)
    wait_for(
        lambda: stack.http("GET", f"/api/v1/jobs/{job_id}/checkpoints")[1]["checkpoints"],
        120,
        0.05,
        "a checkpoint",
    )
    stack.kill(w1, signal.SIGKILL)
    w1.wait(10)
    stack.start_worker("w2")  # the same machine: the same FITFLEET_HOME and data cache
    done = stack.wait_state(job_id, ["succeeded", "failed"], timeout=300)
    assert done["state"] == "succeeded", done["error"]
    tried = stack.http("GET", f"/api/v1/jobs/{job_id}/attempts")[1]["attempts"]
    assert [a["state"] for a in tried] == ["lost", "succeeded"]
    assert tried[1]["resumed_from_step"] > 0

    for a, b in zip(
        model_weights(stack, ref_id, tmp_path), model_weights(stack, job_id, tmp_path), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    assert [r["logs"] for r in metric_rows(stack, job_id, "epoch")] == [
        r["logs"] for r in metric_rows(stack, ref_id, "epoch")
    ]
    w2_log = stack.tail("w2", 10**6)
    assert "downloaded" not in w2_log
    assert w2_log.count("read from the local cache") >= shards + 1
