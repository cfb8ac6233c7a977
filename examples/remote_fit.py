"""Remote fit from Python: a compiled Keras model and local NumPy arrays, trained by fitfleet.

Start a server first (``fitfleet demo --example mlp_csv --keep-running`` serves one on
port 8000), then run ``python examples/remote_fit.py [API URL]``. The arrays are uploaded
to the server's store; the model comes back trained.
"""

from __future__ import annotations

import sys
from pathlib import Path

import keras
import numpy as np

from fitfleet import Client


def main(url: str | None = None) -> int:
    with np.load(Path(__file__).resolve().parent / "digits.npz") as data:
        x, y = data["x"].reshape(-1, 64), data["y"]
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dropout(0.2),
            keras.layers.Dense(10, activation="softmax"),
        ],
        name="digits_mlp",
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )

    client = Client(url)  # FITFLEET_API_URL and FITFLEET_TOKEN when not given
    run = client.fit(
        model,
        x[:1500],
        y[:1500],
        validation_data=(x[1500:], y[1500:]),
        epochs=5,
        batch_size=32,
        checkpoint_every=20,
        callbacks=[keras.callbacks.EarlyStopping(monitor="val_loss", patience=2)],
    )
    job = run.wait()  # Keras-like progress, fed by the metrics cursor
    if job["state"] != "succeeded":
        return 1
    print("val_accuracy per epoch:", run.history.history["val_accuracy"])
    trained = run.load_model()
    loss, accuracy = trained.evaluate(x[1500:], y[1500:], verbose=0)
    print(f"trained model, evaluated here: loss {loss:.4f}, accuracy {accuracy:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else None))
