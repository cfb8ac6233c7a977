"""Training-time errors keep Keras's own reason, scrubbed of server paths and secrets."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from service.store.jobs import JobStore
from tests.specs import blobs, mlp_spec
from tests.unit.test_resume import run_job
from workers.training.reasons import classify, scrub

WIDTH = "expected axis -1 of input shape to have value 6, but received input with shape"


def keras_error(fn) -> BaseException:
    with pytest.raises(Exception) as info:
        fn()
    return info.value


def test_a_layer_error_keeps_keras_sentence_not_the_wrapper():
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
    exc = keras_error(lambda: model(np.zeros((2, 9), "float32")))
    assert str(exc).startswith("Exception encountered when calling")  # what Keras raises
    code, message = classify(exc)
    assert code == "training_error"
    assert WIDTH in message and "(2, 9)" in message
    assert "Exception encountered" not in message and "\x1b" not in message


def test_a_graph_error_keeps_the_op_reason_not_the_stack():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    exc = keras_error(
        lambda: model.fit(np.zeros((4, 4), "float32"), np.array([0, 1, 7, 2]), verbose=0)
    )
    code, message = classify(exc)
    assert code == "training_error"
    # TF words it "Received a label value of 7 which is outside the valid range of [0, 3)",
    # or "indices[2] = 7 is not in [0, 3)" with op determinism on
    assert "7" in message and "[0, 3)" in message
    assert "Graph execution error" not in message and 'File "' not in message
    assert ".py" not in message and "site-packages" not in message


def test_scrub_removes_paths_and_secrets_but_keeps_data_urls():
    text = (
        "cannot open /srv/fitfleet/cache/data/ab12.npz with "
        "aws_secret_access_key=abcd1234 token: xyz AKIAABCDEFGHIJKLMNOP via "
        "https://user:hunter2@minio.local/b and s3://bucket/train/x.npz"
    )
    out = scrub(text)
    for secret in ("/srv/fitfleet", "abcd1234", "xyz", "AKIAABCDEFGHIJKLMNOP", "hunter2"):
        assert secret not in out
    assert "<path>" in out and "s3://bucket/train/x.npz" in out


def test_data_replaced_after_submit_fails_the_job_with_keras_reason(tmp_path, db_url):
    """Plain Keras: fitting 9-wide data into Input((6,)) raises ValueError "... expected
    axis -1 of input shape to have value 6, but received input with shape (.., 9)". The
    fitfleet job that meets such data at run time fails with that sentence."""
    from tests.conftest import embedded_settings

    settings = embedded_settings(tmp_path, database_url=db_url)
    x, y = blobs(features=9)
    np.savez(tmp_path / "train.npz", x=x, y=y)  # the model below takes 6 features
    job, outcomes = run_job(settings, mlp_spec((tmp_path / "train.npz").as_uri()))
    assert outcomes == ["failed"]
    job = JobStore(settings.database_url).get(job["id"])
    assert job["state"] == "failed"
    assert job["error"]["code"] == "training_error"
    assert WIDTH in job["error"]["message"] and "9)" in job["error"]["message"]
    assert str(tmp_path) not in job["error"]["message"]


def test_an_own_error_raised_while_tf_data_reads_keeps_its_code_and_sentence():
    """fitfleet's own data errors raised inside tf.data come back once, with their code."""
    import tensorflow as tf

    from service.core.errors import InvalidSpec

    def gen():
        yield np.zeros((2, 4), "float32"), np.zeros((2, 3), "float32")
        raise InvalidSpec("shard s3://b/p/part-1.npz changed while training")

    ds = tf.data.Dataset.from_generator(
        gen, output_signature=(tf.TensorSpec((None, 4)), tf.TensorSpec((None, 3)))
    )
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile("sgd", "mse")
    exc = keras_error(lambda: model.fit(ds, verbose=0))
    assert isinstance(exc, tf.errors.OpError)
    assert classify(exc) == ("invalid_spec", "shard s3://b/p/part-1.npz changed while training")
