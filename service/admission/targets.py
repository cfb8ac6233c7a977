"""Targets against the model's outputs: which array feeds which output, and do labels fit?

Keras matches a dict of targets by output name and a list by position. ``data.y`` may be
an array name (one output), a list (one per output, in output order) or an object of
output name to array name; :func:`match` refuses what cannot line up before any data is
read, and :func:`check_labels` compares each target's shape, dtype and classes with its
output where the loss makes that checkable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from service.core.errors import InvalidSpec

SPARSE = ("sparsecategoricalcrossentropy", "sparsecategoricalfocalcrossentropy")
ONE_HOT = (
    "categoricalcrossentropy",
    "categoricalfocalcrossentropy",
    "categoricalhinge",
    "kldivergence",
    "kld",
    "kullbackleiblerdivergence",
)


@dataclass(frozen=True)
class Target:
    """One target array and the output it feeds (``index`` None: outputs unknown)."""

    array: str
    index: int | None
    output: str | None
    path: str


def show(shape) -> str:
    """A shape as Keras prints it: ``(None, 28, 28, 1)``."""
    dims = ["None" if d is None else str(d) for d in shape]
    return f"({dims[0]},)" if len(dims) == 1 else f"({', '.join(dims)})"


def _refuse(path: str, message: str) -> InvalidSpec:
    return InvalidSpec(f"{path}: {message}", details={"field": path, "check": "targets"})


def match(y, spec: dict, summary: dict) -> list[Target]:
    """The targets of ``data.y`` matched to the model's outputs; InvalidSpec if they cannot be."""
    outputs, names = summary.get("output_shapes"), summary.get("output_names")
    if isinstance(y, dict):
        return _by_name(y, spec, outputs, names)
    arrays = [y] if isinstance(y, str) else list(y)
    path = "data.y" if isinstance(y, str) else None
    if outputs is None:
        return [Target(a, None, None, path or f"data.y[{i}]") for i, a in enumerate(arrays)]
    listed = f"outputs: {', '.join(names)}" if names else f"{len(outputs)} outputs"
    if len(arrays) != len(outputs):
        hint = (
            f"; give one per output in order, or data.y as {{output: array}} ({listed})"
            if len(outputs) > 1
            else ""
        )
        raise _refuse(
            "data.y",
            f"model has {len(outputs)} output{'s' * (len(outputs) > 1)} "
            f"but data.y names {len(arrays)} array{'s' * (len(arrays) != 1)}{hint}",
        )
    if names and sorted(arrays) == sorted(names) and arrays != list(names):
        raise _refuse(
            "data.y",
            f"data.y lists {', '.join(arrays)}, the model's output names "
            f"in another order ({listed}); Keras matches a list by position: list "
            "them in output order, or give data.y as {output: array}",
        )
    return [
        Target(a, i, names[i] if names else None, path or f"data.y[{i}]")
        for i, a in enumerate(arrays)
    ]


def _by_name(y: dict, spec: dict, outputs, names) -> list[Target]:
    if outputs is not None and not names:
        raise _refuse(
            "data.y",
            "data.y maps output names to arrays, but this model's outputs "
            "have no names (a Sequential model has one output); give data.y as an "
            "array name",
        )
    if names is None:
        return [Target(a, None, k, f"data.y.{k}") for k, a in y.items()]
    listed = ", ".join(names)
    for key, array in y.items():
        if key not in names:
            raise _refuse(
                f"data.y.{key}",
                f"the model has no output {key!r} for array {array!r} (outputs: {listed})",
            )
    for i, name in enumerate(names):
        if name not in y and loss_for(spec, i, name) is not None:
            raise _refuse(
                "data.y", f"data.y gives no array for output {name!r} (outputs: {listed})"
            )
    return [Target(a, names.index(k), k, f"data.y.{k}") for k, a in y.items()]


def loss_for(spec: dict, index: int | None, output: str | None):
    """The spec's loss for one output (a name, a config or None if it has none)."""
    loss = spec["compile"]["loss"]
    if isinstance(loss, dict) and "class_name" not in loss:
        return loss.get(output) if output is not None else None
    if isinstance(loss, list):
        return loss[index] if index is not None and index < len(loss) else None
    return loss


def counts_classes(spec: dict, target: Target) -> bool:
    """True if the target's loss takes class indices, whose range is worth reading."""
    return _loss_names(loss_for(spec, target.index, target.output))[0] in SPARSE


def _loss_names(loss) -> tuple[str, str]:
    """(a normalized name to compare, the name as given to show)."""
    shown = loss.get("class_name") if isinstance(loss, dict) else loss
    shown = shown if isinstance(shown, str) else ""
    return shown.replace("_", "").lower(), shown


def check_dtype(field: str, path: str, what: str, name: str, dtype: np.dtype, label: bool) -> None:
    """Refuse strings and Python objects: Keras trains on numbers only.

    ``field`` is the data location (``data.train``), ``path`` the spec field naming the
    array (``data.y``, ``data.y.cls``).
    """
    details = {"field": path, "data": field, "array": name}
    if dtype.kind == "O":
        raise InvalidSpec(
            f"{field}: {what} {name} ({path}) hold Python objects (dtype "
            "object), which cannot be read without pickle; save numbers "
            "(integers or floats)",
            details={**details, "dtype": "object"},
        )
    if dtype.kind in "US":
        todo = (
            "encode the classes as integers 0 .. n-1 (for example with "
            "np.unique(y, return_inverse=True))"
            if label
            else "encode them as numbers before uploading"
        )
        shown = dtype.str.lstrip("<>|=")
        raise InvalidSpec(
            f"{field}: {what} {name} ({path}) are strings (dtype {shown}), and "
            f"Keras trains on numbers only: {todo}",
            details={**details, "dtype": shown},
        )


def check_labels(
    field: str, spec: dict, target: Target, output: list, shape: tuple, values
) -> None:
    """One target against its output, for the losses whose expectations are known."""
    name = target.array
    where = (
        f"model output {target.output!r} {show(output)}"
        if target.output
        else f"model output {show(output)}"
    )
    loss, shown = _loss_names(loss_for(spec, target.index, target.output))
    units = output[-1] if output else None
    if loss in SPARSE:
        _sparse(field, where, shown, name, units, shape, values)
        return
    if loss in ONE_HOT and units is not None and len(shape) >= 2 and shape[-1] != units:
        raise _mismatch(
            field,
            f"{where} has {units} units but labels {name} have shape "
            f"{show(shape)} ({shape[-1]} classes) for {shown}",
        )
    have = adjusted(list(shape), output)
    if len(have) == len(output) and any(
        w is not None and h is not None and w != h and 1 not in (w, h)
        for w, h in zip(output[1:], have[1:])
    ):
        raise _mismatch(
            field,
            f"{where} does not fit labels {name} of shape {show(shape)}"
            f"{f' for {shown}' if shown else ''}",
        )


def _sparse(field, where, shown, name, units, shape, values) -> None:
    if len(shape) > 2 or (len(shape) == 2 and shape[-1] != 1):
        raise _mismatch(
            field,
            f"{shown} expects integer class labels of shape (samples,) or "
            f"(samples, 1) but labels {name} have shape {show(shape)}",
        )
    if units is None or values is None or not len(values):
        return
    lo, hi = float(np.min(values)), float(np.max(values))
    if lo < 0 or hi >= units or not float(hi).is_integer():
        classes = int(hi) + 1 if float(hi).is_integer() and lo >= 0 else "non-integer"
        raise _mismatch(
            field,
            f"{where} has {units} units but labels {name} range from "
            f"{lo:g} to {hi:g} ({classes} classes) for {shown}",
        )


def adjusted(shape: list, want: list) -> list:
    """Keras adds or drops a trailing axis of size 1 to match an input's rank."""
    if len(shape) == len(want) - 1 and want[-1] == 1:
        return [*shape, 1]
    if len(shape) == len(want) + 1 and shape[-1] == 1:
        return shape[:-1]
    return shape


def _mismatch(field: str, message: str) -> InvalidSpec:
    return InvalidSpec(f"{field}: {message}", details={"field": field, "check": "shape"})
