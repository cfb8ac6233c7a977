"""Helpers of the API tests: tiny models' JSON, settings and an authenticated test client."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from service.core.config import Settings
from service.store.tokens import TokenStore
from service.web.app import create_app

keras = pytest.importorskip("keras")


def sequential_json() -> dict:
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dropout(0.1),
            keras.layers.Dense(3),
        ],
        name="tiny",
    )
    return json.loads(model.to_json())


def functional_json() -> dict:
    a, b = keras.Input((3,), name="a"), keras.Input((2,), name="b")
    out = keras.layers.Dense(1, name="out")(keras.layers.Concatenate()([a, b]))
    return json.loads(keras.Model([a, b], out, name="two_inputs").to_json())


def base_job_spec(models: dict, folder) -> dict:
    """A valid job spec around the Sequential model, its data a small .npz in ``folder``
    with arrays for both models (x and y; a and b for the two-input one)."""
    path = folder / "train.npz"
    if not path.exists():
        np.savez(
            path,
            x=np.zeros((8, 4), "float32"),
            a=np.zeros((8, 3), "float32"),
            b=np.zeros((8, 2), "float32"),
            y=np.arange(8) % 3,
        )
    return {
        "model": copy.deepcopy(models["sequential"]),
        "compile": {
            "optimizer": "adam",
            "loss": "sparse_categorical_crossentropy",
            "metrics": ["accuracy"],
        },
        "data": {"train": path.as_uri()},
        "fit": {"epochs": 2},
    }


def make_settings(tmp_path, database_url: str, **overrides) -> Settings:
    values = {
        "database_url": database_url,
        "broker_url": "filesystem://",
        "storage_url": (tmp_path / "store").as_uri(),
        "home": str(tmp_path),
        "max_spec_bytes": 100_000,
        "data_file_roots": str(tmp_path),
        **overrides,
    }
    return Settings.from_env({}, **values)


def admin_token(settings) -> str:
    """A new admin token's secret, stored in the settings' database."""
    return TokenStore(settings.database_url).create("test", admin=True)[1]


def api_client(settings):
    """A Flask test client of the app that sends an admin token on every request."""
    test_client = create_app(settings).test_client()
    test_client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {admin_token(settings)}"
    return test_client
