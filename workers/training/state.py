"""What a ``.keras`` file does not hold, captured and restored for exact resume.

- every SeedGenerator's state (Dropout and friends), keyed by the owning layer's path,
  because variable paths like ``seed_generator_3`` are renumbered in a new process;
- the Keras metric variables (loss tracker and compiled metrics), so running batch logs
  continue as if nothing happened;
- the state of stateful callbacks (EarlyStopping, ReduceLROnPlateau, ...), which
  ``on_train_begin`` resets;
- Python's and NumPy's global RNG state.
"""

from __future__ import annotations

import random

import numpy as np

_CALLBACK_FIELDS = (
    "wait", "stopped_epoch", "best", "best_epoch", "cooldown_counter", "baseline",
)


def seed_generators(model) -> dict[str, object]:
    """Map a stable name (layer path + index) to each SeedGenerator in the model."""
    out = {}
    for layer in model._flatten_layers(include_self=False):
        for i, gen in enumerate(getattr(layer, "_seed_generators", []) or []):
            out[f"{layer.path}#{i}"] = gen
    return out


def metric_variables(model) -> list:
    return [v for m in model.metrics for v in m.variables]


def capture_arrays(model) -> dict[str, np.ndarray]:
    """Seed-generator states and metric variables as NumPy arrays (copies)."""
    arrays = {f"seed/{k}": np.array(g.state.numpy()) for k, g in seed_generators(model).items()}
    for i, v in enumerate(metric_variables(model)):
        arrays[f"metric/{i:04d}"] = np.array(v.numpy())
    np_state = np.random.get_state()
    arrays["rng/numpy_keys"] = np.asarray(np_state[1])
    arrays["rng/numpy_meta"] = np.asarray([np_state[2], np_state[3]], dtype=np.float64)
    arrays["rng/numpy_gauss"] = np.asarray([np_state[4]], dtype=np.float64)
    return arrays


def restore_seed_generators(model, arrays: dict[str, np.ndarray]) -> int:
    restored = 0
    for key, gen in seed_generators(model).items():
        value = arrays.get(f"seed/{key}")
        if value is not None:
            gen.state.assign(value)
            restored += 1
    return restored


def restore_metrics(model, arrays: dict[str, np.ndarray]) -> None:
    for i, v in enumerate(metric_variables(model)):
        value = arrays.get(f"metric/{i:04d}")
        if value is not None:
            v.assign(value)


def restore_numpy_rng(arrays: dict[str, np.ndarray]) -> None:
    if "rng/numpy_keys" in arrays:
        pos, has_gauss = arrays["rng/numpy_meta"]
        np.random.set_state(("MT19937", arrays["rng/numpy_keys"].astype(np.uint32), int(pos),
                             int(has_gauss), float(arrays["rng/numpy_gauss"][0])))


def capture_python_rng() -> list:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def restore_python_rng(value: list | None) -> None:
    if value:
        random.setstate((value[0], tuple(value[1]), value[2]))


def capture_callbacks(callbacks) -> list[dict]:
    """The counters of user callbacks, in their order (JSON-able)."""
    out = []
    for cb in callbacks:
        fields = {}
        for name in _CALLBACK_FIELDS:
            if hasattr(cb, name):
                fields[name] = _jsonable(getattr(cb, name))
        out.append({"class_name": type(cb).__name__, "fields": fields})
    return out


def restore_callbacks(callbacks, states: list[dict] | None) -> None:
    if not states:
        return
    for cb, saved in zip(callbacks, states):
        if type(cb).__name__ != saved["class_name"]:
            continue
        for name, value in saved["fields"].items():
            setattr(cb, name, _from_json(value))


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
