"""Helpers of the API tests: tiny models' JSON, settings and an authenticated test client."""

from __future__ import annotations

import copy
import json

import pytest

from service.auth import TokenStore
from service.config import Settings
from service.web.app import create_app

keras = pytest.importorskip("keras")


def sequential_json() -> dict:
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dropout(0.1), keras.layers.Dense(3)], name="tiny")
    return json.loads(model.to_json())


def functional_json() -> dict:
    a, b = keras.Input((3,), name="a"), keras.Input((2,), name="b")
    out = keras.layers.Dense(1, name="out")(keras.layers.Concatenate()([a, b]))
    return json.loads(keras.Model([a, b], out, name="two_inputs").to_json())


def base_job_spec(models: dict) -> dict:
    """A valid job spec around the Sequential model (its data path is never read)."""
    return {"model": copy.deepcopy(models["sequential"]),
            "compile": {"optimizer": "adam", "loss": "sparse_categorical_crossentropy",
                        "metrics": ["accuracy"]},
            "data": {"train": "file:///data/train.npz"}, "fit": {"epochs": 2}}


def make_settings(tmp_path, database_url: str, **overrides) -> Settings:
    values = {"database_url": database_url, "broker_url": "filesystem://",
              "storage_url": (tmp_path / "store").as_uri(), "home": str(tmp_path),
              "max_spec_bytes": 100_000, "data_file_roots": "/data", **overrides}
    return Settings.from_env({}, **values)


def admin_token(settings) -> str:
    """A new admin token's secret, stored in the settings' database."""
    return TokenStore(settings.database_url).create("test", admin=True)[1]


def api_client(settings):
    """A Flask test client of the app that sends an admin token on every request."""
    test_client = create_app(settings).test_client()
    test_client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {admin_token(settings)}"
    return test_client
