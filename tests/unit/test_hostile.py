"""Hostile and broken submissions: each gets its 4xx and a clear message, and nothing happens.

Nothing happens means: no job row, no message on the broker, no file written by the spec.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from service.core.config import Settings
from service.store.jobs import JobStore
from service.store.tokens import TokenStore
from service.web.app import create_app

L = keras.layers


def model_json(*layers, shape=(4,)) -> dict:
    return json.loads(keras.Sequential([keras.Input(shape), *layers], name="m").to_json())


@pytest.fixture(scope="module")
def models():
    return {
        "ok": model_json(L.Dense(3)),
        "image": model_json(L.Flatten(), L.Dense(3), shape=(50, 50, 3)),
        "huge": huge_json(),
    }


def huge_json() -> dict:
    """Two Dense layers of 100,000 units on 100,000 inputs (10 billion weights), as JSON only."""
    spec = model_json(L.Dense(3), L.Dense(3))
    layers = spec["config"]["layers"]
    layers[0]["config"]["batch_shape"] = [None, 100_000]
    for dense in layers[1:]:
        dense["config"]["units"] = 100_000
        dense.pop("build_config", None)
    return spec


@pytest.fixture
def env(tmp_path, sqlite_url, models):
    """The app, an admin token, the data files and a clean spec."""
    home = tmp_path / "home"
    home.mkdir()
    rng = np.random.default_rng(0)
    np.savez(home / "d.npz", x=rng.normal(size=(20, 4)).astype("float32"), y=rng.integers(0, 3, 20))
    np.savez(home / "ten.npz", x=np.zeros((20, 4), "float32"), y=np.arange(20) % 10)
    np.savez(
        home / "onehot.npz",
        x=np.zeros((20, 4), "float32"),
        y=np.eye(10, dtype="float32")[np.arange(20) % 10],
    )
    np.savez(home / "img.npz", x=np.zeros((30, 28, 28, 1), "float32"), y=np.zeros(30, "int64"))
    np.savez(home / "short.npz", x=np.zeros((20, 4), "float32"), y=np.zeros(10, "int64"))
    np.savez(home / "big.npz", x=np.zeros((40_000, 4), "float32"), y=np.zeros(40_000, "int64"))
    (home / "bad.npz").write_bytes(b"PK\x03\x04 not really a zip")
    os.symlink("/etc", home / "etc-link")
    (home / "store" / "projects" / "p" / "jobs" / "j").mkdir(parents=True)
    np.savez(home / "store" / "projects" / "p" / "jobs" / "j" / "state.npz", x=np.zeros(2))
    settings = Settings.from_env(
        {},
        database_url=sqlite_url,
        broker_url="filesystem://",
        storage_url=(home / "store").as_uri(),
        home=str(home),
        max_spec_bytes=1_000_000,
        max_data_bytes=200_000,
        max_epochs=1000,
        max_batch_size=4096,
        max_layers=200,
        data_s3_locations="fitfleet-data",
    )
    client = create_app(settings).test_client()
    secret = TokenStore(sqlite_url).create("t")[1]
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    spec = {
        "model": copy.deepcopy(models["ok"]),
        "compile": {"optimizer": "adam", "loss": "sparse_categorical_crossentropy"},
        "data": {"train": (home / "d.npz").as_uri()},
        "fit": {"epochs": 2},
    }
    return client, settings, spec, home, models


def layer(spec: dict, i: int = 1) -> dict:
    return spec["model"]["config"]["layers"][i]


def train(spec: dict, url: str) -> None:
    spec["data"]["train"] = url


def many_layers(spec, n: int = 250):
    dense = layer(spec)
    spec["model"]["config"]["layers"] += [
        {**copy.deepcopy(dense), "config": {**dense["config"], "name": f"d{i}"}} for i in range(n)
    ]


def nested(depth: int) -> str:
    return '{"model": ' + "[" * depth + "]" * depth + "}"


# name: (change the spec (may return a raw body), status, words the message must hold)
CASES = {
    "Lambda layer": (
        lambda s, h, m: layer(s).update(class_name="Lambda"),
        422,
        "Lambda objects are not allowed",
    ),
    "TFSMLayer loads a saved graph": (
        lambda s, h, m: layer(s).update(class_name="TFSMLayer"),
        422,
        "TFSMLayer objects are not allowed",
    ),
    "module outside Keras": (
        lambda s, h, m: layer(s).update(module="os"),
        422,
        "module 'os' is not allowed",
    ),
    "Keras-internal utility module": (
        lambda s, h, m: layer(s).update(module="keras.src.utils.file_utils"),
        422,
        "is not allowed",
    ),
    "custom registered class": (
        lambda s, h, m: layer(s).update(registered_name="evil>Layer"),
        422,
        "custom object 'evil>Layer' is not allowed",
    ),
    "unsafe deserialization switch": (
        lambda s, h, m: s["model"]["config"].update(enable_unsafe_deserialization=True),
        422,
        "'enable_unsafe_deserialization' is not allowed",
    ),
    "safe_mode off in a layer": (
        lambda s, h, m: layer(s)["config"].update(safe_mode=False),
        422,
        "'safe_mode' is not allowed",
    ),
    "builtins eval as a loss": (
        lambda s, h, m: s["compile"].update(
            loss={
                "module": "builtins",
                "class_name": "function",
                "config": "eval",
                "registered_name": "eval",
            }
        ),
        422,
        "module 'builtins' is not allowed",
    ),
    "unknown layer class": (
        lambda s, h, m: layer(s).update(class_name="Dense42"),
        422,
        "unknown layer class 'Dense42'",
    ),
    "10-billion-parameter model": (
        lambda s, h, m: s.update(model=m["huge"]),
        422,
        "FITFLEET_MAX_PARAMS",
    ),
    "too many layers": (lambda s, h, m: many_layers(s), 422, "FITFLEET_MAX_LAYERS"),
    "50 MB spec": (
        lambda s, h, m: json.dumps({**s, "name": "x" * 50_000_000}),
        413,
        "FITFLEET_MAX_SPEC_BYTES",
    ),
    "deeply nested JSON": (lambda s, h, m: nested(100_000), 400, "nested too deeply"),
    "nesting past the spec's depth": (lambda s, h, m: nested(150), 422, "nested deeper than"),
    "NaN literal": (
        lambda s, h, m: json.dumps(s)[:-1] + ', "seed": NaN}',
        400,
        "NaN is not valid JSON",
    ),
    "Infinity literal": (
        lambda s, h, m: json.dumps(s).replace('"epochs": 2', '"epochs": Infinity'),
        400,
        "Infinity is not valid JSON",
    ),
    "not an object": (lambda s, h, m: "[1, 2, 3]", 400, "must be a JSON object"),
    "file:///etc/passwd": (
        lambda s, h, m: train(s, "file:///etc/passwd"),
        422,
        "FITFLEET_DATA_FILE_ROOTS",
    ),
    "file:// with ..": (
        lambda s, h, m: train(s, f"{h.as_uri()}/../../etc/passwd"),
        422,
        "'..' is not allowed",
    ),
    "symlink out of the data folder": (
        lambda s, h, m: train(s, f"{h.as_uri()}/etc-link/passwd"),
        422,
        "symbolic link",
    ),
    "file:// naming a host": (
        lambda s, h, m: train(s, "file://fileserver/d.npz"),
        422,
        "must not name a host",
    ),
    "the job store's own objects": (
        lambda s, h, m: train(s, f"{h.as_uri()}/store/projects/p/jobs/j/state.npz"),
        422,
        "job store",
    ),
    "cloud metadata over http": (
        lambda s, h, m: train(s, "http://169.254.169.254/latest"),
        422,
        "cloud metadata service",
    ),
    "cloud metadata as a bucket": (
        lambda s, h, m: train(s, "s3://169.254.169.254/x.npz"),
        422,
        "cloud metadata service",
    ),
    "metadata in decimal notation": (
        lambda s, h, m: train(s, "http://2852039166/latest"),
        422,
        "cloud metadata service",
    ),
    "private address": (
        lambda s, h, m: train(s, "s3://10.1.2.3/d.npz"),
        422,
        "private, loopback and link-local",
    ),
    "loopback name": (
        lambda s, h, m: train(s, "http://localhost:6379/"),
        422,
        "local or internal machine",
    ),
    "bucket outside the allowlist": (
        lambda s, h, m: train(s, "s3://someone-else/d.npz"),
        422,
        "FITFLEET_DATA_S3_LOCATIONS",
    ),
    "credentials in the URL": (
        lambda s, h, m: train(s, "s3://AKIAX:hunter2@fitfleet-data/d"),
        422,
        "must not carry credentials",
    ),
    "scheme not allowed": (
        lambda s, h, m: train(s, "ftp://example.com/d.npz"),
        422,
        "FITFLEET_DATA_SCHEMES",
    ),
    "data over the size limit": (
        lambda s, h, m: train(s, (h / "big.npz").as_uri()),
        422,
        "FITFLEET_MAX_DATA_BYTES",
    ),
    "input shape mismatch": (
        lambda s, h, m: (s.update(model=m["image"]), train(s, (h / "img.npz").as_uri())),
        422,
        "model expects input (None, 50, 50, 3) but data x has shape (30, 28, 28, 1)",
    ),
    "more classes than output units": (
        lambda s, h, m: train(s, (h / "ten.npz").as_uri()),
        422,
        "labels y range from 0 to 9 (10 classes)",
    ),
    "one-hot width against output units": (
        lambda s, h, m: (
            train(s, (h / "onehot.npz").as_uri()),
            s["compile"].update(loss="categorical_crossentropy"),
        ),
        422,
        "has 3 units but labels y have shape (20, 10)",
    ),
    "x and y of different lengths": (
        lambda s, h, m: train(s, (h / "short.npz").as_uri()),
        422,
        "differ in their number of samples",
    ),
    "missing array": (
        lambda s, h, m: s["data"].update(x="features"),
        422,
        "no array named 'features'",
    ),
    "corrupt .npz": (
        lambda s, h, m: train(s, (h / "bad.npz").as_uri()),
        422,
        "not a readable .npz file",
    ),
    "unknown optimizer": (
        lambda s, h, m: s["compile"].update(optimizer="adamz"),
        422,
        "compile.optimizer",
    ),
    "negative epochs": (
        lambda s, h, m: s["fit"].update(epochs=-1),
        422,
        "fit.epochs must be a positive integer",
    ),
    "epochs over the limit": (
        lambda s, h, m: s["fit"].update(epochs=10**9),
        422,
        "FITFLEET_MAX_EPOCHS",
    ),
    "batch size over the limit": (
        lambda s, h, m: s["fit"].update(batch_size=10**7),
        422,
        "FITFLEET_MAX_BATCH_SIZE",
    ),
    "callback outside the list": (
        lambda s, h, m: s["fit"].update(callbacks=[{"class_name": "LambdaCallback"}]),
        422,
        "fit.callbacks[0].class_name must be one of",
    ),
    "control characters in the name": (
        lambda s, h, m: s.update(name="a\x00b"),
        422,
        "name must be a printable string",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_submission_is_refused_and_leaves_no_trace(env, case):
    client, settings, spec, home, models = env
    change, status, words = CASES[case]
    body = change(spec, home, models)
    if isinstance(body, str):
        response = client.post("/api/v1/jobs", data=body, content_type="application/json")
    else:
        response = client.post("/api/v1/jobs", json=spec)
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    error = response.get_json()["error"]
    assert words in error["message"], error
    assert "hunter2" not in response.get_data(as_text=True)
    assert str(home) not in error["message"] or case.startswith(("file", "symlink", "the job"))
    assert JobStore(settings.database_url).list(None, 10, None)[0] == []
    outbox = Path(settings.home) / "broker" / "out"
    assert not outbox.is_dir() or not any(outbox.iterdir())


def test_the_catalogue_is_long_enough():
    assert len(CASES) >= 30


def test_the_clean_spec_is_accepted(env):
    client, settings, spec, _, _ = env
    response = client.post("/api/v1/jobs", json=spec)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert len(JobStore(settings.database_url).list(None, 10, None)[0]) == 1


def test_an_operator_allowlisted_class_passes_the_module_rule(env, monkeypatch):
    from service.core import config

    client, _, spec, _, _ = env
    layer(spec).update(module="my_company.layers", class_name="Dense")
    assert client.post("/api/v1/jobs", json=spec).status_code == 422
    monkeypatch.setenv("FITFLEET_KERAS_ALLOW", "my_company.layers.Dense")
    config.reset_settings()
    try:
        from service.admission.spec_safety import check_keras_json

        check_keras_json(spec["model"], "model")  # allowed now: no error
    finally:
        monkeypatch.delenv("FITFLEET_KERAS_ALLOW")
        config.reset_settings()


def test_no_credentials_in_answers_or_logs(tmp_path, caplog):
    import logging

    settings = Settings.from_env(
        {},
        database_url="postgresql+psycopg://fitfleet:s3cretdb@127.0.0.1:1/fitfleet",
        broker_url="redis://:s3cretmq@127.0.0.1:1/0",
        storage_url=(tmp_path / "s").as_uri(),
        home=str(tmp_path),
    )
    client = create_app(settings).test_client()
    with caplog.at_level(logging.DEBUG):
        ready = client.get("/readyz")
        denied = client.get("/api/v1/jobs", headers={"Authorization": "Bearer ff_s3crettoken"})
    assert ready.status_code == 503 and denied.status_code in (401, 503)
    for text in (ready.get_data(as_text=True), denied.get_data(as_text=True), caplog.text):
        assert "s3cretdb" not in text and "s3cretmq" not in text and "s3crettoken" not in text


def test_a_functional_model_built_with_keras_ops_is_accepted(env):
    client, _, spec, _, _ = env
    a = keras.Input((4,))
    out = keras.layers.Dense(3)(keras.ops.add(a, keras.activations.relu(a)))
    spec["model"] = json.loads(keras.Model(a, out).to_json())
    modules = {layer.get("module") for layer in spec["model"]["config"]["layers"]}
    assert any(m and m.startswith("keras.src.ops") for m in modules)
    response = client.post("/api/v1/jobs", json=spec)
    assert response.status_code == 201, response.get_data(as_text=True)
