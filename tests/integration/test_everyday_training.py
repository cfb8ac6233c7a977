"""Week-one training cases: sample weights, run-time errors and ``Client.fit``'s arguments.

Each case states what plain Keras does; the test checks that fitfleet does the same, on
real PostgreSQL, Redis, moto's S3 server and real API and worker processes.
"""

from __future__ import annotations

import io
import uuid

import numpy as np
import pytest

from fitfleet import Client, FitfleetAPIError
from service.admission import modelspec
from tests.integration.jobs_helpers import model_weights
from tests.specs import blobs, npz_bytes

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

pytestmark = pytest.mark.slow
WIDTH = "expected axis -1 of input shape to have value 6, but received input with shape"


def compiled_mlp():
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(3),
        ],
        name="wmlp",
    )
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def client_of(stack) -> Client:
    return Client(stack.api_url, token=getattr(stack, "token", None))


def put(s3, body: bytes, suffix: str = "npz") -> tuple[str, str]:
    key = f"data/{uuid.uuid4().hex[:10]}/train.{suffix}"
    s3.client().put_object(Bucket=s3.bucket, Key=key, Body=body)
    return key, f"s3://{s3.bucket}/{key}"


def test_client_fit_with_sample_weight_trains_as_model_fit(stack, tmp_path):
    """Plain Keras: ``model.fit(x, y, sample_weight=w, validation_data=(xv, yv, wv),
    shuffle=False, verbose=0)`` weights each sample's loss by w and val_loss by wv, and
    prints nothing. ``Client.fit`` with the same arguments uploads the weights, ``wait()``
    prints nothing, and the trained weights and epoch logs equal plain Keras's."""
    stack.start_api()
    stack.start_worker("w1")
    x, y = blobs(n=120, features=6, seed=4)
    w = np.random.default_rng(9).uniform(0.2, 3.0, 120).astype("float32")
    model = compiled_mlp()
    run = client_of(stack).fit(
        model,
        x[:96],
        y[:96],
        16,
        3,
        0,
        sample_weight=w[:96],
        validation_data=(x[96:], y[96:], w[96:]),
        shuffle=False,
        seed=5,
    )
    out = io.StringIO()
    job = run.wait(timeout=300, poll=0.5, stream=out)
    assert job["state"] == "succeeded", job["error"]
    assert out.getvalue() == ""  # verbose=0, as model.fit
    assert run.job["spec"]["data"]["sample_weight"] == "sw"

    tf.config.experimental.enable_op_determinism()  # as the worker runs
    keras.utils.set_random_seed(5)
    plain = modelspec.build_model(run.job["spec"]["model"])
    modelspec.compile_model(plain, run.job["spec"]["compile"])
    history = plain.fit(
        x[:96],
        y[:96],
        sample_weight=w[:96],
        batch_size=16,
        epochs=3,
        validation_data=(x[96:], y[96:], w[96:]),
        shuffle=False,
        verbose=0,
    )
    got = model_weights(stack, run.id, tmp_path)
    for a, b in zip(got, plain.weights):
        np.testing.assert_array_equal(a, b.numpy())
    logs = run.history.history
    for key in ("loss", "val_loss"):
        assert logs[key] == pytest.approx(history.history[key], rel=1e-6)


def test_data_that_breaks_the_model_at_run_time_fails_with_keras_reason(stack, s3):
    """Plain Keras: fitting 9-wide samples into ``Input((6,))`` raises ValueError "Input 0
    ... expected axis -1 of input shape to have value 6, but received input with shape
    (..., 9)". fitfleet's job fails with that sentence (not the first line of the
    traceback, "Exception encountered when calling Sequential.call()."), with no server
    path, whether the .npz was replaced after submit or a Parquet list column is 9 wide
    (if admission can see the Parquet width it refuses at submit, naming both widths)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    stack.start_api()
    client = client_of(stack)
    x6, y = blobs(n=64, features=6)
    key, url = put(s3, npz_bytes(x6, y))
    replaced = client.fit(compiled_mlp(), url, "y", batch_size=16, max_attempts=1)
    x9, _ = blobs(n=64, features=9)
    s3.client().put_object(Bucket=s3.bucket, Key=key, Body=npz_bytes(x9, y))

    table = pa.table({"x": pa.array(list(x9), type=pa.list_(pa.float32(), 9)), "y": y})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    _, parquet_url = put(s3, buf.getvalue(), "parquet")
    try:
        parquet = client.fit(compiled_mlp(), parquet_url, "y", batch_size=16, max_attempts=1)
    except FitfleetAPIError as refused:  # a submit-time Parquet shape check
        assert refused.status == 422 and "9" in refused.message and "6" in refused.message
        parquet = None
    stack.start_worker("w1")
    for run in filter(None, (replaced, parquet)):
        job = run.wait(timeout=300, poll=0.5, verbose=0)
        assert job["state"] == "failed"
        error = job["error"]
        assert error["code"] == "training_error", error
        assert WIDTH in error["message"] and "9)" in error["message"], error
        assert "Exception encountered" not in error["message"]
        assert str(stack.env["FITFLEET_HOME"]) not in error["message"]


def test_submit_refuses_sample_weights_that_cannot_fit_and_stores_nothing(stack, s3):
    """Plain Keras refuses sample weights of another length than the samples
    (and an array it cannot find is a KeyError before training). fitfleet refuses both at
    submit with a 422 naming data.sample_weight, and no job is created."""
    stack.start_api()
    client = client_of(stack)
    x, y = blobs(n=40, features=6)
    buf = io.BytesIO()
    np.savez(buf, x=x, y=y, w=np.ones(39))
    _, url = put(s3, buf.getvalue())
    for name, words in (
        ("weights", "no array named 'weights'"),
        ("w", "has 39 weights but the data has 40 samples"),
    ):
        with pytest.raises(FitfleetAPIError) as info:
            client.fit(compiled_mlp(), url, "y", sample_weight=name)
        assert info.value.status == 422 and words in info.value.message
        assert info.value.details["field"] == "data.sample_weight"
    with pytest.raises(TypeError, match="x= as NumPy arrays"):
        client.fit(compiled_mlp(), tf.data.Dataset.from_tensor_slices((x, y)).batch(8))
    assert client.jobs() == []
