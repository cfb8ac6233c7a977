"""Regenerate examples/: the digits and blobs data sets and the job specs that train on them.

Run with ``.venv/bin/python scripts/make_examples.py``. Making ``digits.npz`` needs
scikit-learn (``.venv/bin/pip install scikit-learn``), which ships the data set; the
rest needs only NumPy and Keras. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DATA_URL = "file://{examples}/"  # the demo and the tests put the examples folder's path here


def make_digits(folder: Path) -> None:
    """The 8x8 handwritten digits as x (N, 8, 8, 1) float32 in [0, 1] and y int64."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")[..., None]
    y = digits.target.astype("int64")
    np.savez_compressed(folder / "digits.npz", x=x, y=y)


def make_blobs(folder: Path, n: int = 300, features: int = 4, classes: int = 3) -> None:
    """Gaussian blobs around one centre per class, as a CSV with a ``label`` column."""
    rng = np.random.default_rng(20240611)
    centres = rng.uniform(-3.0, 3.0, size=(classes, features))
    y = rng.integers(0, classes, size=n)
    x = centres[y] + rng.normal(scale=1.5, size=(n, features))
    with open(folder / "blobs.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([f"f{i}" for i in range(features)] + ["label"])
        for row, label in zip(x, y):
            writer.writerow([f"{v:.4f}" for v in row] + [int(label)])


def _model_json(model) -> dict:
    return json.loads(model.to_json())


def digits_cnn_spec() -> dict:
    import keras

    layers = keras.layers
    model = keras.Sequential([
        keras.Input((8, 8, 1), name="image"),
        layers.Conv2D(16, 3, activation="relu", name="conv"),
        layers.MaxPooling2D(name="pool"),
        layers.Dropout(0.25, name="dropout"),
        layers.Flatten(name="flatten"),
        layers.Dense(32, activation="relu", name="hidden"),
        layers.BatchNormalization(name="norm"),
        layers.Dense(10, activation="softmax", name="digit"),
    ], name="digits_cnn")
    return {
        "name": "digits-cnn",
        "model": _model_json(model),
        "compile": {"optimizer": {"class_name": "Adam", "config": {"learning_rate": 0.001}},
                    "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
        "data": {"train": DATA_URL + "digits.npz", "validation": None, "x": "x", "y": "y"},
        "fit": {"epochs": 5, "batch_size": 64, "validation_split": 0.1, "shuffle": True},
        "checkpoint": {"every_epoch": True, "every_n_batches": None, "every_seconds": None,
                       "keep_last": 3},
        "seed": 0,
        "queue": "default",
        "priority": 0,
        "max_attempts": 3,
    }


def mlp_csv_spec(features: int = 4, classes: int = 3) -> dict:
    import keras

    layers = keras.layers
    model = keras.Sequential([
        keras.Input((features,), name="features"),
        layers.Dense(16, activation="relu", name="hidden"),
        layers.Dense(classes, activation="softmax", name="label"),
    ], name="blobs_mlp")
    return {
        "name": "blobs-mlp",
        "model": _model_json(model),
        "compile": {"optimizer": {"class_name": "Adam", "config": {"learning_rate": 0.01}},
                    "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
        "data": {"train": DATA_URL + "blobs.csv", "validation": None, "y": "label"},
        "fit": {"epochs": 8, "batch_size": 32, "validation_split": 0.2, "shuffle": True},
        "checkpoint": {"every_epoch": True, "keep_last": 2},
        "seed": 0,
    }


def write_spec(folder: Path, name: str, spec: dict) -> None:
    (folder / f"{name}.json").write_text(json.dumps(spec, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=EXAMPLES)
    parser.add_argument("--skip-digits", action="store_true",
                        help="keep digits.npz as it is (no scikit-learn needed)")
    args = parser.parse_args()
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.skip_digits:
        make_digits(args.out)
    make_blobs(args.out)
    write_spec(args.out, "digits_cnn", digits_cnn_spec())
    write_spec(args.out, "mlp_csv", mlp_csv_spec())


if __name__ == "__main__":
    main()
