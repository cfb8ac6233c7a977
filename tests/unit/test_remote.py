"""Remote fit: a compiled Keras model as a job spec and back, and local arrays uploaded."""

from __future__ import annotations

import threading

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("flask")

from fitfleet import Client, FitfleetAPIError, packing, remote
from service.admission import modelspec
from service.admission.spec import normalize
from service.core.config import Settings
from service.storage import key_of, open_store


def mlp():
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(3),
        ],
        name="mlp",
    )
    model.compile(
        optimizer=keras.optimizers.Adam(0.003),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def two_inputs():
    a, b = keras.Input((3,), name="a"), keras.Input((2,), name="b")
    h = keras.layers.Concatenate()([keras.layers.Dense(4)(a), b])
    model = keras.Model([a, b], keras.layers.Dense(1, name="score")(h), name="two")
    model.compile(optimizer="sgd", loss="mse")
    return model


def test_model_to_spec_round_trip():
    model = mlp()
    callbacks = [
        keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=2, min_delta=0.01, restore_best_weights=True
        ),
        keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=1, min_lr=1e-5),
    ]
    raw = remote.to_spec(
        model,
        {"train": "s3://b/train.npz"},
        epochs=4,
        batch_size=16,
        callbacks=callbacks,
        checkpoint_every=50,
        seed=3,
        max_attempts=2,
    )
    spec = normalize(raw, Settings.from_env({}))
    assert spec["fit"]["epochs"] == 4 and spec["fit"]["batch_size"] == 16
    assert spec["checkpoint"]["every_n_batches"] == 50 and spec["max_attempts"] == 2
    assert spec["name"] == "mlp" and spec["seed"] == 3
    rebuilt = modelspec.build_model(spec["model"])
    modelspec.compile_model(rebuilt, spec["compile"])
    assert remote.model_config(rebuilt) == remote.model_config(model)
    assert rebuilt.get_compile_config() == model.get_compile_config()
    assert float(rebuilt.optimizer.learning_rate) == pytest.approx(0.003)
    assert rebuilt.loss.get_config()["from_logits"] is True
    made = modelspec.make_callbacks(spec["fit"]["callbacks"])
    assert [type(c) for c in made] == [type(c) for c in callbacks]
    for got, want in zip(made, callbacks):
        for attr in ("monitor", "patience", "min_delta", "mode"):
            assert getattr(got, attr) == getattr(want, attr)
    assert made[0].restore_best_weights is True and made[1].factor == 0.5


def test_unsupported_callbacks_and_uncompiled_models_are_refused():
    with pytest.raises(ValueError, match="cannot run remotely"):
        remote.callback_config(keras.callbacks.ModelCheckpoint("/tmp/x.keras"))
    bare = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="compile the model"):
        remote.compile_config(bare)


def test_pack_names_arrays_by_model_inputs():
    model = two_inputs()
    a, b, y = np.ones((5, 3)), np.zeros((5, 2)), np.arange(5.0)
    arrays, xn, yn = packing.pack(model, {"b": b, "a": a}, y)
    assert xn == ["x_a", "x_b"] and yn == "y"
    np.testing.assert_array_equal(arrays["x_a"], a)
    arrays, xn, _ = packing.pack(model, [a, b], y)
    assert xn == ["x0", "x1"] and arrays["x1"].shape == (5, 2)
    with pytest.raises(ValueError, match="different numbers of samples"):
        packing.pack(model, [a, b], y[:4])
    with pytest.raises(TypeError, match="not a dataset or generator"):
        packing.pack(model, (v for v in a), y)


@pytest.fixture
def api(tmp_path, sqlite_url):
    """The API served in process from SQLite, a file store and the file broker."""
    from werkzeug.serving import make_server

    from service.web.app import create_app

    settings = Settings.from_env(
        {},
        database_url=sqlite_url,
        broker_url="filesystem://",
        auth="off",
        storage_url=(tmp_path / "store").as_uri(),
        home=str(tmp_path),
        max_upload_bytes=50_000,
    )
    server = make_server("127.0.0.1", 0, create_app(settings), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Client(f"http://127.0.0.1:{server.server_port}"), settings
    finally:
        server.shutdown()
        thread.join(10)


def test_fit_uploads_local_arrays_and_submits_the_model(api):
    client, settings = api
    model = two_inputs()
    rng = np.random.default_rng(0)
    x = {
        "a": rng.normal(size=(40, 3)).astype("float32"),
        "b": rng.normal(size=(40, 2)).astype("float32"),
    }
    y = rng.normal(size=(40,)).astype("float32")
    run = client.fit(
        model,
        x,
        y,
        validation_data=([x["a"][:8], x["b"][:8]], y[:8]),
        epochs=2,
        batch_size=8,
        callbacks=[keras.callbacks.TerminateOnNaN()],
    )
    spec = run.job["spec"]
    assert spec["data"]["x"] == ["x_a", "x_b"] and spec["data"]["y"] == "y"
    assert [c["class_name"] for c in spec["fit"]["callbacks"]] == ["TerminateOnNaN"]
    assert spec["compile"]["loss"] == "mse" and run.job["state"] == "queued"
    store = open_store(settings.storage_url)
    train_key = key_of(store, spec["data"]["train"])
    assert train_key.startswith("uploads/")
    with np.load(store.base / train_key) as stored:
        np.testing.assert_array_equal(stored["x_b"], x["b"])
        np.testing.assert_array_equal(stored["y"], y)
    with np.load(store.base / key_of(store, spec["data"]["validation"])) as stored:
        assert sorted(stored.files) == ["x_a", "x_b", "y"] and len(stored["y"]) == 8
        np.testing.assert_array_equal(stored["x_a"], x["a"][:8])


def test_upload_is_content_addressed_checked_and_size_limited(api, tmp_path):
    client, _ = api
    arrays = {"x": np.arange(10.0), "y": np.arange(10)}
    assert client.upload(arrays) == client.upload(arrays)
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(FitfleetAPIError) as bad:
        client.upload(tmp_path / "junk.npz")
    assert (bad.value.status, bad.value.code) == (400, "bad_upload")
    with pytest.raises(FitfleetAPIError) as big:
        client.upload({"x": np.zeros(20_000)})
    assert (big.value.status, big.value.code) == (413, "payload_too_large")
    assert "FITFLEET_MAX_UPLOAD_BYTES" in big.value.message


def test_fit_with_data_urls_sends_them_as_they_are(api, tmp_path):
    client, _ = api
    x = np.random.default_rng(1).normal(size=(30, 6)).astype("float32")
    np.savez(tmp_path / "train.npz", features=x, label=np.arange(30) % 3)
    np.savez(tmp_path / "val.npz", features=x[:6], label=np.arange(6) % 3)
    train, val = (tmp_path / "train.npz").as_uri(), (tmp_path / "val.npz").as_uri()
    run = client.fit(
        mlp(),
        x=train,
        y="label",
        x_names="features",
        validation_data=val,
        epochs=3,
        batch_size=8,
        max_attempts=1,
        callbacks=[keras.callbacks.EarlyStopping(patience=1)],
    )
    data = run.job["spec"]["data"]
    assert (data["train"], data["validation"]) == (train, val)
    assert (data["x"], data["y"]) == ("features", "label")
    assert run.job["spec"]["fit"]["callbacks"][0]["config"]["patience"] == 1
    assert run.job["max_attempts"] == 1
    with pytest.raises(ValueError, match="validation_data must be"):
        client.fit(mlp(), x=train, validation_data=(x,))
