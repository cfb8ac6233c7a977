"""A compiled ``keras.Model`` and ``fit`` arguments as a fitfleet job spec (Keras only if given).

Example:
    >>> spec = to_spec(model, {"train": "s3://bucket/train.npz"}, epochs=5, batch_size=64,
    ...                callbacks=[keras.callbacks.EarlyStopping(patience=2)])
"""

from __future__ import annotations

import inspect
import json

# A copy of service.admission.allowed.CALLBACKS (the client may not import the server);
# tests/unit/test_allowed.py keeps the two equal.
CALLBACKS = ("EarlyStopping", "ReduceLROnPlateau", "TerminateOnNaN")


def model_config(model) -> dict:
    """``json.loads(model.to_json())``: the architecture, without weights."""
    return json.loads(model.to_json())


def compile_config(model) -> dict:
    """The spec's ``compile`` section from a compiled model, in Keras's own forms."""
    cfg = model.get_compile_config() if hasattr(model, "get_compile_config") else None
    if not cfg or cfg.get("loss") is None:
        raise ValueError("compile the model (with a loss) before fitting it remotely")
    if cfg.get("weighted_metrics"):
        raise ValueError("weighted_metrics are not supported by remote fit; use metrics")
    out = {"optimizer": cfg.get("optimizer") or "adam", "loss": cfg["loss"],
           "metrics": cfg.get("metrics") or []}
    if cfg.get("loss_weights") is not None:
        out["loss_weights"] = cfg["loss_weights"]
    return _plain(out)


def callback_config(callback) -> dict:
    """``{"class_name", "config"}`` of a standard Keras callback, from its constructor's arguments.

    Keras callbacks have no ``get_config``; each argument is read back from the attribute
    of the same name, which is where these callbacks keep them.
    """
    name = type(callback).__name__
    if name not in CALLBACKS or not type(callback).__module__.startswith("keras"):
        raise ValueError(f"callback {name} cannot run remotely; use one of {', '.join(CALLBACKS)}"
                         " (metrics, checkpoints and progress are recorded by fitfleet itself)")
    params = inspect.signature(type(callback).__init__).parameters
    config = {p: getattr(callback, p) for p in params
              if p not in ("self", "kwargs", "args") and hasattr(callback, p)}
    return {"class_name": name, "config": _plain(config)}


def _plain(value):
    """JSON values only (NumPy scalars become Python numbers)."""
    return json.loads(json.dumps(value, default=lambda v: v.item() if hasattr(v, "item")
                                 else str(v)))


def to_spec(model, data: dict, *, epochs: int = 1, batch_size: int = 32,
            validation_split: float = 0.0, shuffle: bool = True, class_weight=None,
            callbacks=(), checkpoint_every: int | None = None, checkpoint: dict | None = None,
            seed: int = 0, name: str | None = None, **extra) -> dict:
    """A job spec (API.md) training ``model`` on ``data`` as ``model.fit`` would.

    Args:
        model: a compiled ``keras.Model`` (Sequential or Functional).
        data: the spec's ``data`` section (``train``, ``validation``, ``x``, ``y``, ``format``).
        checkpoint_every: a checkpoint every N batches (besides one per epoch).
        checkpoint: the spec's whole ``checkpoint`` section, when more is needed.
        extra: other top-level spec fields (``queue``, ``priority``, ``max_attempts`` ...).
    """
    fit = {"epochs": int(epochs), "batch_size": int(batch_size),
           "validation_split": float(validation_split), "shuffle": bool(shuffle),
           "callbacks": [callback_config(cb) for cb in callbacks or ()]}
    if class_weight:
        fit["class_weight"] = {str(int(k)): float(v) for k, v in class_weight.items()}
    ck = dict(checkpoint or {})
    if checkpoint_every:
        ck["every_n_batches"] = int(checkpoint_every)
    spec = {"name": name or model.name, "model": model_config(model),
            "compile": compile_config(model), "data": {k: v for k, v in data.items()
                                                       if v is not None},
            "fit": fit, "checkpoint": ck, "seed": int(seed)}
    spec.update({k: v for k, v in extra.items() if v is not None})
    return spec


def _ordered(model, attribute: str, value: dict) -> list:
    """The keys of ``value`` in the order of the model's inputs (or outputs) when they match."""
    names = [str(getattr(t, "name", "")) for t in getattr(model, attribute, None) or []]
    return names if sorted(names) == sorted(map(str, value)) else list(value)


def pack(model, x, y, like: tuple | None = None) -> tuple[dict, object, object]:
    """Arrays as named ``.npz`` members: ``(arrays, x names, y names)`` for the spec.

    ``x``/``y`` may be one array (named ``x``/``y``), a list (one per model input or
    output, in order: ``x0``, ``x1`` ...) or a dict keyed by input or output name
    (``x_<name>``): inputs ordered as the model's, targets given to the spec as a dict
    ``{output name: array name}``, which the server matches by name. ``like`` is the
    ``(x names, y names)`` of the training arrays: validation arrays take the same names.
    """
    import numpy as np

    if y is None:
        raise ValueError("y is required when x is given as arrays")
    arrays: dict = {}

    def add(value, attribute: str, base: str):
        if isinstance(value, dict) and attribute == "outputs":  # matched by output name
            names = {str(k): f"{base}_{k}" for k in value}
            arrays.update((names[str(k)], _array(np, v)) for k, v in value.items())
            return names
        if isinstance(value, dict):
            items = [(f"{base}_{k}", value[k]) for k in _ordered(model, attribute, value)]
        elif isinstance(value, (list, tuple)):
            items = [(f"{base}{i}", v) for i, v in enumerate(value)]
        else:
            arrays[base] = _array(np, value)
            return base
        arrays.update((k, _array(np, v)) for k, v in items)
        return [k for k, _ in items]

    x_names, y_names = add(x, "inputs", "x"), add(y, "outputs", "y")
    if like is not None:
        arrays = _rename(arrays, (x_names, y_names), like)
        x_names, y_names = like
    lengths = {len(a) for a in arrays.values()}
    if len(lengths) != 1:
        raise ValueError(f"x and y hold different numbers of samples: {sorted(lengths)}")
    return arrays, x_names, y_names


def pack_weights(model, sample_weight, arrays: dict, like=None):
    """Add sample weights to ``arrays``: one array (``sw``), a list (``sw0`` ...) or a dict
    by output name (``sw_<name>``); returns the spec's ``data.sample_weight``.

    ``like`` is the training data's ``data.sample_weight``: validation weights take its names.
    """
    import numpy as np

    if sample_weight is None:
        return None
    if isinstance(sample_weight, dict):
        names = {str(k): f"sw_{k}" for k in _ordered(model, "outputs", sample_weight)}
        items = [(names[str(k)], sample_weight[k]) for k in sample_weight]
    elif isinstance(sample_weight, (list, tuple)):
        names = [f"sw{i}" for i in range(len(sample_weight))]
        items = list(zip(names, sample_weight))
    else:
        names, items = "sw", [("sw", sample_weight)]
    new = {k: _array(np, v) for k, v in items}
    if like is not None:
        old, want = _flat_names(names), _flat_names(like)
        if len(old) != len(want):
            raise ValueError("validation sample weights must have the form of sample_weight")
        new, names = {w: new[o] for o, w in zip(old, want)}, like
    samples = {len(a) for a in arrays.values()}
    for key, w in new.items():
        if w.ndim == 0 or {len(w)} != samples:
            raise ValueError(f"sample_weight {key!r} holds {len(w) if w.ndim else 0} weights "
                             f"but x and y hold {min(samples)} samples; give one per sample")
    arrays.update(new)
    return names


def check_names(value, argument: str) -> None:
    """With a data URL, ``argument`` names arrays or columns: TypeError for arrays."""
    names = list(value.values()) if isinstance(value, dict) else (
        [value] if value is None or isinstance(value, str) else value)
    if not isinstance(names, (list, tuple)) or not all(
            n is None or isinstance(n, str) for n in names):
        raise TypeError(f"with a data URL as x, {argument} names the array(s) or column(s) "
                        "of that data (a name, a list of names, or a dict of output name to "
                        "name), not arrays; pass x as arrays to upload the weights with them")


def _flat_names(names) -> list[str]:
    if isinstance(names, dict):
        return list(names.values())
    return [names] if isinstance(names, str) else list(names)


def refuse_streams(value, argument: str = "x") -> None:
    """TypeError for what remote fit cannot send: datasets, generators, PyDatasets, callables."""
    if value is None or isinstance(value, str):
        return
    kind = None
    if hasattr(value, "element_spec"):
        kind = "a tf.data.Dataset"
    elif inspect.isgenerator(value) or inspect.isgeneratorfunction(value):
        kind = "a generator"
    elif hasattr(value, "__getitem__") and hasattr(value, "on_epoch_end") \
            and not hasattr(value, "shape"):
        kind = f"a {type(value).__name__} (keras.utils.PyDataset)"
    elif callable(value) or (hasattr(value, "__next__") and not hasattr(value, "shape")):
        kind = f"a {type(value).__name__}"
    if kind:
        raise TypeError(
            f"Client.fit takes {argument}= as NumPy arrays (one array, a list, or a dict by "
            f"input name) or as an s3:// or file:// data URL, not {kind}; write the data to "
            ".npz, Parquet or TFRecord files (a folder of shards for a large set) and pass "
            "their URL, or pass the arrays")


def _array(np, value):
    """``value`` as a NumPy array of numbers; TypeError for datasets, generators, objects."""
    if hasattr(value, "element_spec") or inspect.isgenerator(value) or callable(value):
        raise TypeError("remote fit takes arrays or a data URL, not a dataset or generator; "
                        "write the data to .npz, Parquet or TFRecord shards and pass their URL")
    array = np.asarray(value)
    if array.dtype == object or array.ndim == 0:
        raise TypeError(f"cannot send a {type(value).__name__} as an array of samples")
    return array


def _rename(arrays: dict, names: tuple, like: tuple) -> dict:
    """``arrays`` keyed by the names in ``like``, matched by position."""
    def flat(pair, keys=None):
        out = []
        for i, part in enumerate(pair):
            if isinstance(part, dict):
                order = keys[i] if keys and isinstance(keys[i], dict) else part
                out += [part[k] for k in order if k in part]
            else:
                out += _flat_names(part)
        return out

    old, new = flat(names, like), flat(like)
    if len(old) != len(new):
        raise ValueError("validation_data does not have the inputs and outputs of x and y")
    return {n: arrays[o] for o, n in zip(old, new)}


def verbosity(verbose) -> int:
    """``model.fit``'s ``verbose`` ("auto", 0, 1, 2) as the default of ``Run.wait``."""
    if verbose == "auto":
        return 1
    if verbose in (0, 1, 2) and not isinstance(verbose, bool):
        return int(verbose)
    raise ValueError(f"verbose must be \"auto\", 0, 1 or 2 as for model.fit, got {verbose!r}")


def refuse_fit_arguments(*, initial_epoch, steps_per_epoch, validation_steps, validation_freq,
                          validation_batch_size, batch_size) -> None:
    """ValueError naming a ``model.fit`` argument whose meaning does not carry over."""
    why = {
        "initial_epoch": (initial_epoch != 0, "a job starts at epoch 0 and resumes from "
                          + "its own checkpoints; leave initial_epoch=0"),
        "steps_per_epoch": (steps_per_epoch is not None, "every epoch is one pass over the "
                            + "data; leave steps_per_epoch=None and send the samples to train on"),
        "validation_steps": (validation_steps is not None, "validation runs over all of "
                             + "validation_data; leave validation_steps=None"),
        "validation_freq": (validation_freq != 1,
                            "validation runs after every epoch; leave validation_freq=1"),
        "validation_batch_size": (validation_batch_size not in (None, batch_size),
                                  "validation uses batch_size; leave validation_batch_size=None"),
    }
    for argument, (refused, message) in why.items():
        if refused:
            raise ValueError(f"Client.fit does not take {argument}: {message}")
