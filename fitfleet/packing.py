"""Local NumPy arrays as the named ``.npz`` members a job's data is uploaded as, and the
``x``/``y``/``sample_weight`` names the spec then gives (``Client.fit`` with arrays)."""

from __future__ import annotations

import inspect


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
            raise ValueError(
                f"sample_weight {key!r} holds {len(w) if w.ndim else 0} weights "
                f"but x and y hold {min(samples)} samples; give one per sample"
            )
    arrays.update(new)
    return names


def check_names(value, argument: str) -> None:
    """With a data URL, ``argument`` names arrays or columns: TypeError for arrays."""
    names = (
        list(value.values())
        if isinstance(value, dict)
        else ([value] if value is None or isinstance(value, str) else value)
    )
    if not isinstance(names, (list, tuple)) or not all(
        n is None or isinstance(n, str) for n in names
    ):
        raise TypeError(
            f"with a data URL as x, {argument} names the array(s) or column(s) "
            "of that data (a name, a list of names, or a dict of output name to "
            "name), not arrays; pass x as arrays to upload the weights with them"
        )


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
    elif (
        hasattr(value, "__getitem__")
        and hasattr(value, "on_epoch_end")
        and not hasattr(value, "shape")
    ):
        kind = f"a {type(value).__name__} (keras.utils.PyDataset)"
    elif callable(value) or (hasattr(value, "__next__") and not hasattr(value, "shape")):
        kind = f"a {type(value).__name__}"
    if kind:
        raise TypeError(
            f"Client.fit takes {argument}= as NumPy arrays (one array, a list, or a dict by "
            f"input name) or as an s3:// or file:// data URL, not {kind}; write the data to "
            ".npz, Parquet or TFRecord files (a folder of shards for a large set) and pass "
            "their URL, or pass the arrays"
        )


def _array(np, value):
    """``value`` as a NumPy array of numbers; TypeError for datasets, generators, objects."""
    if hasattr(value, "element_spec") or inspect.isgenerator(value) or callable(value):
        raise TypeError(
            "remote fit takes arrays or a data URL, not a dataset or generator; "
            "write the data to .npz, Parquet or TFRecord shards and pass their URL"
        )
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


def validation_arrays(model, validation_data, data: dict, uploaded: bool) -> dict:
    """``(x_val, y_val)`` or ``(x_val, y_val, sw_val)`` as arrays under the training names."""
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
        raise ValueError(
            "validation_data must be a URL or a tuple (x_val, y_val) or "
            "(x_val, y_val, sample_weight_val) of arrays"
        )
    for value in validation_data:
        refuse_streams(value, "validation_data")
    like = (data["x"], data["y"]) if uploaded else None
    arrays, _, _ = pack(model, *validation_data[:2], like=like)
    if len(validation_data) == 3 and validation_data[2] is not None:
        if data.get("sample_weight") is None:
            raise ValueError(
                "validation sample weights need sample_weight for the "
                "training data too (give ones to leave it unweighted)"
            )
        pack_weights(model, validation_data[2], arrays, like=data["sample_weight"])
    return arrays
