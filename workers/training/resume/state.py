"""What a ``.keras`` file does not hold, captured and restored for exact resume.

- every SeedGenerator's state (Dropout and friends), keyed by the owning layer's path,
  because variable paths like ``seed_generator_3`` are renumbered in a new process;
- the Keras metric variables (loss tracker and compiled metrics), so running batch logs
  continue as if nothing happened;
- the state of stateful callbacks (EarlyStopping, ReduceLROnPlateau, ...), which
  ``on_train_begin`` resets, EarlyStopping's ``best_weights`` included;
- Python's and NumPy's global RNG state.
"""

from __future__ import annotations

import random

import numpy as np

from service.core import keras_internals

_CALLBACK_FIELDS = (
    "wait",
    "stopped_epoch",
    "best",
    "best_epoch",
    "cooldown_counter",
    "baseline",
)


def seed_generators(model) -> dict[str, object]:
    """Map a stable name (layer path + index) to each SeedGenerator in the model."""
    out = {}
    for layer in keras_internals.layers_of(model):
        for i, gen in enumerate(keras_internals.seed_generators_of(layer)):
            out[f"{layer.path}#{i}"] = gen
    return out


def metric_variables(model) -> list:
    return [v for m in model.metrics for v in m.variables]


def capture_arrays(model) -> dict[str, np.ndarray]:
    """Seed-generator states and metric variables as NumPy arrays (copies)."""
    arrays = {f"seed/{k}": np.array(g.state.numpy()) for k, g in seed_generators(model).items()}
    arrays.update(capture_metrics(model))
    np_state = np.random.get_state()
    arrays["rng/numpy_keys"] = np.asarray(np_state[1])
    arrays["rng/numpy_meta"] = np.asarray([np_state[2], np_state[3]], dtype=np.float64)
    arrays["rng/numpy_gauss"] = np.asarray([np_state[4]], dtype=np.float64)
    return arrays


def capture_metrics(model) -> dict[str, np.ndarray]:
    """The Keras metric variables as NumPy arrays (copies), keyed as in a checkpoint."""
    return {f"metric/{i:04d}": np.array(v.numpy()) for i, v in enumerate(metric_variables(model))}


def restore_seed_generators(model, arrays: dict[str, np.ndarray]) -> int:
    restored = 0
    for key, gen in seed_generators(model).items():
        value = arrays.get(f"seed/{key}")
        if value is not None:
            gen.state.assign(value)
            restored += 1
    return restored


def restore_metrics(model, arrays: dict[str, np.ndarray]) -> None:
    """Put captured metric variables back.

    Under MultiWorkerMirroredStrategy a metric's sums are read summed over the workers,
    and each worker assigns its own copy: each takes an equal share, so the sum over the
    workers is the captured value again.
    """
    workers = _workers(model)
    for i, v in enumerate(metric_variables(model)):
        value = arrays.get(f"metric/{i:04d}")
        if value is not None:
            if workers > 1 and getattr(v, "aggregation", None) == "sum":
                value = (value / workers).astype(value.dtype)
            v.assign(value)


def _workers(model) -> int:
    """Worker processes that train ``model`` together (1 without a multi-worker strategy)."""
    strategy = getattr(model, "distribute_strategy", None)
    replicas = int(getattr(strategy, "num_replicas_in_sync", 1) or 1)
    if replicas <= 1:
        return 1
    try:
        local = len(strategy.extended.worker_devices) or 1
    except (AttributeError, RuntimeError):  # a strategy without worker devices
        return 1
    return max(1, replicas // local)


def restore_numpy_rng(arrays: dict[str, np.ndarray]) -> None:
    if "rng/numpy_keys" in arrays:
        pos, has_gauss = arrays["rng/numpy_meta"]
        np.random.set_state(
            (
                "MT19937",
                arrays["rng/numpy_keys"].astype(np.uint32),
                int(pos),
                int(has_gauss),
                float(arrays["rng/numpy_gauss"][0]),
            )
        )


def capture_python_rng() -> list:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def restore_python_rng(value: list | None) -> None:
    if value:
        random.setstate((value[0], tuple(value[1]), value[2]))


def capture_callbacks(callbacks) -> list[dict]:
    """The counters of user callbacks, in their order.

    ``fields`` is JSON-able; ``weights`` (EarlyStopping's ``best_weights``, NumPy copies)
    is present only when the callback holds some: :func:`split_callbacks` moves it into
    the arrays of a checkpoint.
    """
    out = []
    for cb in callbacks:
        fields = {}
        for name in _CALLBACK_FIELDS:
            if hasattr(cb, name):
                fields[name] = _jsonable(getattr(cb, name))
        entry = {"class_name": type(cb).__name__, "fields": fields}
        best = getattr(cb, "best_weights", None)
        if best is not None:
            entry["weights"] = [np.array(w) for w in best]
        out.append(entry)
    return out


def split_callbacks(states: list[dict]) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Captured callback states as (their JSON part, their arrays keyed for ``state.npz``)."""
    plain, arrays = [], {}
    for i, entry in enumerate(states):
        weights = entry.get("weights")
        plain.append(
            {k: v for k, v in entry.items() if k != "weights"}
            | ({"weights": len(weights)} if weights is not None else {})
        )
        for j, w in enumerate(weights or []):
            arrays[f"callback/{i:03d}/best_weights/{j:05d}"] = w
    return plain, arrays


def join_callbacks(plain: list[dict] | None, arrays: dict[str, np.ndarray]) -> list[dict] | None:
    """The inverse of :func:`split_callbacks`."""
    if plain is None:
        return None
    out = []
    for i, entry in enumerate(plain):
        entry = dict(entry)
        if "weights" in entry:
            entry["weights"] = [
                arrays[f"callback/{i:03d}/best_weights/{j:05d}"]
                for j in range(int(entry["weights"]))
            ]
        out.append(entry)
    return out


def restore_callbacks(callbacks, states: list[dict] | None) -> None:
    """Put captured counters (and best weights) back, matching callbacks by position."""
    if not states:
        return
    for cb, saved in zip(callbacks, states, strict=True):
        if type(cb).__name__ != saved["class_name"]:
            continue
        for name, value in saved["fields"].items():
            setattr(cb, name, _from_json(value))
        if "weights" in saved:
            cb.best_weights = [np.array(w) for w in saved["weights"]]


def stash_best_weights(callbacks) -> None:
    """Drop best weights before an intermediate ``on_train_end`` would restore them.

    Keras's EarlyStopping sets the model to ``best_weights`` at the end of every ``fit``
    call; a resume makes two calls where an uninterrupted run makes one, so the first
    call's end must not restore (the state was captured just before).
    """
    for cb in callbacks:
        if getattr(cb, "best_weights", None) is not None:
            cb.best_weights = None


def _jsonable(value):
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return {"float": repr(value)}
    if hasattr(value, "numpy"):
        return _jsonable(np.asarray(value).item())
    return value


def _from_json(value):
    if isinstance(value, dict) and "float" in value:
        return float(value["float"])
    return value
