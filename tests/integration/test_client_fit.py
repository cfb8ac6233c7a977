"""``Client.fit`` with a real compiled Keras model against real API and worker processes."""

from __future__ import annotations

import io

import numpy as np
import pytest

from fitfleet import Client
from service.store.metrics import MetricStore
from tests.integration.jobs_helpers import model_weights
from tests.specs import blobs

keras = pytest.importorskip("keras")

pytestmark = pytest.mark.slow


def compiled_mlp():
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(3),
        ],
        name="remote-mlp",
    )
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def test_fit_returns_keras_history_and_the_trained_model(stack, tmp_path):
    stack.start_api()
    stack.start_worker("w1")
    client = Client(stack.api_url, token=getattr(stack, "token", None))
    x, y = blobs(n=240, features=6)
    model = compiled_mlp()
    before = [w.numpy() for w in model.weights]
    run = client.fit(
        model,
        x[:200],
        y[:200],
        validation_data=(x[200:], y[200:]),
        epochs=3,
        batch_size=16,
        checkpoint_every=5,
        seed=11,
        callbacks=[keras.callbacks.EarlyStopping(monitor="val_loss", patience=9)],
    )
    out = io.StringIO()
    job = run.wait(timeout=300, poll=0.5, stream=out)
    assert job["state"] == "succeeded", job["error"]
    assert "Epoch 3/3" in out.getvalue() and f"job {run.id} succeeded" in out.getvalue()

    rows = MetricStore(stack.env["DATABASE_URL"]).read(run.id, "epoch")["rows"]
    history = run.history
    assert history.epoch == [0, 1, 2] == [r["epoch"] for r in rows]
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    for key, values in history.history.items():
        assert values == [r["logs"][key] for r in rows]

    trained = run.load_model()
    stored = model_weights(stack, run.id, tmp_path)
    assert len(trained.weights) == len(stored) == len(before)
    for got, want in zip(trained.weights, stored, strict=True):
        np.testing.assert_array_equal(got.numpy(), want)
    assert any(not np.array_equal(a, b) for a, b in zip(before, stored, strict=True))  # it trained
    steps = [c["step"] for c in run.checkpoints()]
    spe = job["progress"]["steps_per_epoch"]
    assert steps and all(s % 5 == 0 or s % spe == 0 for s in steps)
    assert run.metrics(kind="batch", after=36)["rows"][0]["step"] == 37
    probs = trained.predict(x[200:], verbose=0)
    assert probs.shape == (40, 3)
