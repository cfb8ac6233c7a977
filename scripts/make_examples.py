"""Regenerate examples/: the data sets (digits, blobs, sequences, pairs) and the job specs.

Run with ``.venv/bin/python scripts/make_examples.py``. Making ``digits.npz`` needs
scikit-learn (``.venv/bin/pip install scikit-learn``), which ships the data set; the
rest needs NumPy, pyarrow, TensorFlow and Keras. Nothing is downloaded.
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
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1), name="image"),
            layers.Conv2D(16, 3, activation="relu", name="conv"),
            layers.MaxPooling2D(name="pool"),
            layers.Dropout(0.25, name="dropout"),
            layers.Flatten(name="flatten"),
            layers.Dense(32, activation="relu", name="hidden"),
            layers.Dense(10, activation="softmax", name="digit"),
        ],
        name="digits_cnn",
    )
    return {
        "name": "digits-cnn",
        "model": _model_json(model),
        "compile": {
            "optimizer": {"class_name": "Adam", "config": {"learning_rate": 0.001}},
            "loss": "sparse_categorical_crossentropy",
            "metrics": ["accuracy"],
        },
        "data": {"train": DATA_URL + "digits.npz", "validation": None, "x": "x", "y": "y"},
        # No BatchNormalization: its moving statistics need more steps than a two-minute
        # demo has, and validation then lags training for no reason a newcomer can see.
        "fit": {"epochs": 10, "batch_size": 32, "validation_split": 0.1, "shuffle": True},
        "checkpoint": {
            "every_epoch": True,
            "every_n_batches": None,
            "every_seconds": None,
            "keep_last": 3,
        },
        "seed": 0,
        "queue": "default",
        "priority": 0,
        "max_attempts": 3,
    }


def mlp_csv_spec(features: int = 4, classes: int = 3) -> dict:
    import keras

    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((features,), name="features"),
            layers.Dense(16, activation="relu", name="hidden"),
            layers.Dense(classes, activation="softmax", name="label"),
        ],
        name="blobs_mlp",
    )
    return {
        "name": "blobs-mlp",
        "model": _model_json(model),
        "compile": {
            "optimizer": {"class_name": "Adam", "config": {"learning_rate": 0.01}},
            "loss": "sparse_categorical_crossentropy",
            "metrics": ["accuracy"],
        },
        "data": {"train": DATA_URL + "blobs.csv", "validation": None, "y": "label"},
        "fit": {"epochs": 8, "batch_size": 32, "validation_split": 0.2, "shuffle": True},
        "checkpoint": {"every_epoch": True, "keep_last": 2},
        "seed": 0,
    }


def make_sequences(folder: Path, n: int = 2000, length: int = 16, vocab: int = 20) -> None:
    """Token sequences holding one 5 and one 9 among other tokens; label 1 when 5 comes first.

    Written as Parquet: ``tokens`` a column of fixed-length int64 lists, ``label`` int64.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(20240612)
    others = np.array([t for t in range(1, vocab) if t not in (5, 9)])
    tokens = rng.choice(others, size=(n, length))
    for row in tokens:
        i, j = rng.choice(length, size=2, replace=False)
        row[i], row[j] = 5, 9
    label = (np.argmax(tokens == 5, axis=1) < np.argmax(tokens == 9, axis=1)).astype("int64")
    column = pa.FixedSizeListArray.from_arrays(pa.array(tokens.ravel().astype("int64")), length)
    pq.write_table(
        pa.table({"tokens": column, "label": pa.array(label)}), folder / "sequences.parquet"
    )


def _pairs(rng, n: int):
    a = rng.normal(size=(n, 6)).astype("float32")
    b = rng.normal(size=(n, 3)).astype("float32")
    score = a @ np.array([1.0, -0.5, 0.8, 0.0, 0.3, -1.0]) + 1.5 * b[:, 0] * b[:, 1] - b[:, 2]
    return a, b, (score > 0).astype("int64")


def make_pairs(folder: Path, shards: int = 4, per_shard: int = 400, val: int = 300) -> None:
    """Two inputs, ``a`` (6 features) and ``b`` (3), and a binary ``label``.

    Training data as a folder of Parquet shards streamed by the workers (``pairs/``);
    validation data as one TFRecord file of ``tf.train.Example`` records.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    import tensorflow as tf

    rng = np.random.default_rng(20240613)
    (folder / "pairs").mkdir(exist_ok=True)
    for i in range(shards):
        a, b, y = _pairs(rng, per_shard)
        table = pa.table(
            {
                "a": pa.FixedSizeListArray.from_arrays(pa.array(a.ravel()), 6),
                "b": pa.FixedSizeListArray.from_arrays(pa.array(b.ravel()), 3),
                "label": pa.array(y),
            }
        )
        pq.write_table(table, folder / "pairs" / f"part-{i:03d}.parquet")
    a, b, y = _pairs(rng, val)
    with tf.io.TFRecordWriter(str(folder / "pairs_val.tfrecord")) as writer:
        for ai, bi, yi in zip(a, b, y):
            feature = {
                "a": tf.train.Feature(float_list=tf.train.FloatList(value=ai)),
                "b": tf.train.Feature(float_list=tf.train.FloatList(value=bi)),
                "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[yi])),
            }
            example = tf.train.Example(features=tf.train.Features(feature=feature))
            writer.write(example.SerializeToString())


def lstm_sequence_spec(length: int = 16, vocab: int = 20) -> dict:
    import keras

    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((length,), dtype="int64", name="tokens"),
            layers.Embedding(vocab, 16, name="embed"),
            layers.LSTM(32, name="lstm"),
            layers.Dense(1, activation="sigmoid", name="first"),
        ],
        name="order_lstm",
    )
    return {
        "name": "order-lstm",
        "model": _model_json(model),
        "compile": {
            "optimizer": {"class_name": "Adam", "config": {"learning_rate": 0.005}},
            "loss": "binary_crossentropy",
            "metrics": ["accuracy"],
        },
        "data": {"train": DATA_URL + "sequences.parquet", "x": "tokens", "y": "label"},
        "fit": {
            "epochs": 6,
            "batch_size": 32,
            "validation_split": 0.15,
            "shuffle": True,
            "callbacks": [
                {"class_name": "EarlyStopping", "config": {"monitor": "val_loss", "patience": 3}}
            ],
        },
        "checkpoint": {"every_epoch": True, "every_n_batches": 20, "keep_last": 2},
        "seed": 0,
    }


def two_inputs_spec() -> dict:
    import keras

    layers = keras.layers
    a = keras.Input((6,), name="a")
    b = keras.Input((3,), name="b")
    left = layers.Dense(16, activation="relu", name="a_dense")(a)
    right = layers.Dense(16, activation="relu", name="b_dense")(b)
    joined = layers.Concatenate(name="join")([left, right])
    hidden = layers.Dense(16, activation="relu", name="hidden")(joined)
    out = layers.Dense(1, activation="sigmoid", name="label")(hidden)
    model = keras.Model([a, b], out, name="two_inputs")
    return {
        "name": "two-inputs",
        "model": _model_json(model),
        "compile": {
            "optimizer": {"class_name": "Adam", "config": {"learning_rate": 0.01}},
            "loss": "binary_crossentropy",
            "metrics": ["accuracy"],
        },
        "data": {
            "train": DATA_URL + "pairs/",
            "validation": DATA_URL + "pairs_val.tfrecord",
            "x": ["a", "b"],
            "y": "label",
        },
        "fit": {
            "epochs": 8,
            "batch_size": 32,
            "shuffle": True,
            "callbacks": [
                {
                    "class_name": "ReduceLROnPlateau",
                    "config": {"monitor": "val_loss", "factor": 0.5, "patience": 2},
                }
            ],
        },
        "checkpoint": {"every_epoch": True, "keep_last": 2},
        "seed": 0,
    }


def write_spec(folder: Path, name: str, spec: dict) -> None:
    (folder / f"{name}.json").write_text(json.dumps(spec, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=EXAMPLES)
    parser.add_argument(
        "--skip-digits",
        action="store_true",
        help="keep digits.npz as it is (no scikit-learn needed)",
    )
    args = parser.parse_args()
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.skip_digits:
        make_digits(args.out)
    make_blobs(args.out)
    make_sequences(args.out)
    make_pairs(args.out)
    write_spec(args.out, "digits_cnn", digits_cnn_spec())
    write_spec(args.out, "mlp_csv", mlp_csv_spec())
    write_spec(args.out, "lstm_sequence", lstm_sequence_spec())
    write_spec(args.out, "two_inputs", two_inputs_spec())


if __name__ == "__main__":
    main()
