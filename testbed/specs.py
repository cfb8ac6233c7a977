"""Tiny Keras job specs and data sets for tests and benchmarks (generated, nothing downloaded)."""

from __future__ import annotations

import io
import json

import numpy as np


def blobs(n: int = 120, features: int = 6, classes: int = 3, seed: int = 0):
    """A small classification set: the label is the argmax of the first features."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype("float32")
    y = np.argmax(x[:, :classes], axis=1).astype("int64")
    return x, y


def npz_bytes(x, y) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, x=x, y=y)
    return buf.getvalue()


def mlp_model_json(features: int = 6, classes: int = 3, hidden: int = 8) -> dict:
    """An MLP with Dropout and BatchNormalization, as ``json.loads(model.to_json())``."""
    import keras

    model = keras.Sequential(
        [
            keras.Input((features,)),
            keras.layers.Dense(hidden, activation="relu"),
            keras.layers.Dropout(0.3),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(classes, activation="softmax"),
        ]
    )
    return json.loads(model.to_json())


def mlp_spec(
    data_url: str,
    *,
    epochs: int = 3,
    batch_size: int = 16,
    features: int = 6,
    hidden: int = 8,
    checkpoint: dict | None = None,
    **extra,
) -> dict:
    """A job spec (API.md form) training :func:`mlp_model_json` on ``data_url``."""
    spec = {
        "name": "tiny-mlp",
        "model": mlp_model_json(features=features, hidden=hidden),
        "compile": {
            "optimizer": {"class_name": "Adam", "config": {"learning_rate": 0.01}},
            "loss": "sparse_categorical_crossentropy",
            "metrics": ["accuracy"],
        },
        "data": {"train": data_url},
        "fit": {
            "epochs": epochs,
            "batch_size": batch_size,
            "validation_split": 0.2,
            "callbacks": [
                {"class_name": "EarlyStopping", "config": {"monitor": "val_loss", "patience": 50}}
            ],
        },
        "checkpoint": {"every_epoch": True, **(checkpoint or {})},
        "seed": 7,
    }
    spec.update(extra)
    return spec
