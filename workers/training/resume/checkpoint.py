"""Checkpoint contents: take a snapshot in memory, write it as files, load it back.

A checkpoint is a ``model.keras`` (weights and optimizer state; plain
``keras.models.load_model`` opens it), ``state.npz`` (seed generators, metric variables,
NumPy RNG, EarlyStopping's best weights) and ``state.json`` (position, callback
counters, Python RNG, logs). The training thread only copies the model's state into a
:class:`Snapshot` of host NumPy arrays (one copy of the weights and optimizer state,
:mod:`kerasfile`); the files are written from the snapshot elsewhere.

A checkpoint with ``"validated": false`` in its meta holds the state after an epoch's last
batch whose validation was abandoned (a stop during the validation pass): a resume from it
runs that validation and the epoch's end before the next epoch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from service.storage import sha256_file
from workers.training.resume import kerasfile, state

FILES = ("model.keras", "state.npz", "state.json")


@dataclass
class Snapshot:
    """A consistent copy of everything a resume needs, taken between two batches."""

    step: int
    epoch: int
    batch: int
    model: kerasfile.ModelState
    arrays: dict[str, np.ndarray]
    meta: dict = field(default_factory=dict)
    blocked_seconds: float = 0.0  # the training thread's time taking and handing it over

    @property
    def nbytes(self) -> int:
        return self.model.nbytes + sum(a.nbytes for a in self.arrays.values())


def take(
    model,
    *,
    step: int,
    epoch: int,
    batch: int,
    callbacks,
    logs: dict,
    metric_arrays: dict[str, np.ndarray] | None = None,
    callback_states: list[dict] | None = None,
) -> Snapshot:
    """Copy the model's state and the resume state (no I/O).

    ``metric_arrays`` (and ``callback_states``) replace the live ones: a snapshot taken
    during an abandoned validation pass holds the training metrics of the epoch's last
    batch, which ``evaluate`` has reset since; such a snapshot is marked not validated.
    """
    arrays = state.capture_arrays(model)
    if metric_arrays is not None:
        arrays.update(metric_arrays)
    plain, weights = state.split_callbacks(
        callback_states if callback_states is not None else state.capture_callbacks(callbacks)
    )
    arrays.update(weights)
    return Snapshot(
        step=step,
        epoch=epoch,
        batch=batch,
        model=kerasfile.capture(model),
        arrays=arrays,
        meta={
            "step": step,
            "epoch": epoch,
            "batch": batch,
            "validated": metric_arrays is None,
            "callbacks": plain,
            "python_rng": state.capture_python_rng(),
            "logs": {k: float(v) for k, v in (logs or {}).items()},
        },
    )


def write(snapshot: Snapshot, directory: Path) -> dict[str, dict]:
    """Write the snapshot's files into ``directory``; returns {name: {sha256, bytes}}."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {"model.keras": kerasfile.write(snapshot.model, directory / "model.keras")}
    np.savez(directory / "state.npz", **snapshot.arrays)
    (directory / "state.json").write_text(json.dumps(snapshot.meta))
    for name in FILES[1:]:
        path = directory / name
        files[name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    return files


def verify(directory: Path, files: dict[str, dict]) -> str | None:
    """None if every file is present with its checksum, else what is wrong."""
    for name in FILES:
        path = directory / name
        if not path.is_file():
            return f"{name} is missing"
        if name in files and sha256_file(path) != files[name]["sha256"]:
            return f"{name} has a bad checksum"
    return None


def load(model, directory: Path) -> dict:
    """Load weights, optimizer state, seed generators and NumPy RNG; returns the meta.

    The model must be compiled and built (optimizer included) before this.
    """
    model.load_weights(directory / "model.keras")
    with np.load(directory / "state.npz", allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    state.restore_seed_generators(model, arrays)
    state.restore_numpy_rng(arrays)
    meta = json.loads((directory / "state.json").read_text())
    state.restore_python_rng(meta.get("python_rng"))
    meta["callbacks"] = state.join_callbacks(meta.get("callbacks"), arrays)
    meta["arrays"] = arrays
    return meta
