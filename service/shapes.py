"""Shape checks before the GPU: does the data fit the model's inputs, outputs and loss?

Run at submit time when the data can be inspected (a local file, or an S3 object read
through ranged GETs). Messages speak Keras's terms, e.g. ``model expects input
(None, 50, 50, 3) but data x has shape (30, 28, 28, 1)``.
"""

from __future__ import annotations

import logging
from pathlib import PurePosixPath
from urllib.parse import urlparse

import numpy as np

from service import datahead, policy
from service.config import Settings
from service.errors import InvalidSpec

log = logging.getLogger(__name__)
SPARSE = ("sparsecategoricalcrossentropy", "sparsecategoricalfocalcrossentropy")
ONE_HOT = ("categoricalcrossentropy", "categoricalfocalcrossentropy", "categoricalhinge",
           "kldivergence", "kld", "kullbackleiblerdivergence")


def mismatch(field: str, message: str) -> InvalidSpec:
    """A 422 ``invalid_spec`` for ``field`` whose details say a shape check refused it."""
    return InvalidSpec(f"{field}: {message}", details={"field": field, "check": "shape"})


def show(shape) -> str:
    """A shape as Keras prints it: ``(None, 28, 28, 1)``."""
    dims = ["None" if d is None else str(d) for d in shape]
    return f"({dims[0]},)" if len(dims) == 1 else f"({', '.join(dims)})"


def check(spec: dict, summary: dict, settings: Settings) -> None:
    """Check a normalized spec's data against its model summary; skip what cannot be seen.

    A location that certainly does not exist is a 422 ``data_not_found`` naming the URL.
    """
    data = spec["data"]
    for key in ("train", "validation"):
        url = data.get(key)
        if not url:
            continue
        field = f"data.{key}"
        try:
            _check_location(url, field, data, spec, summary, settings)
        except datahead.Missing as exc:
            raise InvalidSpec(f"{field}: {exc}", code="data_not_found",
                              details={"field": field, "url": url}) from exc
        except datahead.Uninspectable as exc:
            log.debug("not inspecting %s: %s", field, exc)
        except datahead.Unreadable as exc:
            raise InvalidSpec(f"{field}: {exc}", details={"field": field, "check": "data"}) \
                from exc


def _check_location(url: str, field: str, data: dict, spec: dict, summary: dict,
                    settings: Settings) -> None:
    """One object, or the first shard of a prefix (named in the message if it is refused)."""
    if not url.endswith("/"):
        source = datahead.open_source(url)
        policy.check_size(source.size, field, settings)
        _check_source(source, field, data, spec, summary)
        return
    shard = datahead.first_shard(url, data.get("format"))
    try:
        _check_source(datahead.open_source(shard), field, data, spec, summary)
    except (InvalidSpec, datahead.Unreadable) as exc:
        reason = exc.message if isinstance(exc, InvalidSpec) else str(exc)
        details = exc.details if isinstance(exc, InvalidSpec) else {"field": field}
        raise InvalidSpec(f"{field}: first shard {shard}: {reason.removeprefix(field + ': ')}",
                          details={**details, "shard": shard}) from exc


def _check_source(source, field: str, data: dict, spec: dict, summary: dict) -> None:
    fmt = data.get("format") or PurePosixPath(urlparse(source.url).path).suffix.lstrip(".")
    inputs, outputs = summary.get("input_shapes"), summary.get("output_shapes")
    if fmt.lower() == "npz":
        _check_npz(source, field, data, spec, inputs, outputs)
    elif fmt.lower() == "csv":
        _check_csv(source, field, data, spec, inputs, outputs)


def _names(value) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _check_npz(source, field, data, spec, inputs, outputs) -> None:
    arrays = datahead.npz_arrays(source)
    x_names, y_names = _names(data.get("x", "x")), _names(data.get("y", "y"))
    for name in (*x_names, *y_names):
        if name not in arrays:
            raise mismatch(field, f"the .npz file has no array named {name!r} "
                           f"(it has {', '.join(sorted(arrays)) or 'none'})")
    xs, ys = [arrays[n].shape for n in x_names], [arrays[n].shape for n in y_names]
    samples = {n: s[0] if s else None for n, s in zip([*x_names, *y_names], [*xs, *ys])}
    if len(set(samples.values())) > 1:
        parts = ", ".join(f"{n} has {s}" for n, s in samples.items())
        raise mismatch(field, f"the arrays differ in their number of samples: {parts}")
    if inputs is not None:
        _match(field, "input", inputs, list(zip(x_names, xs)))
    if outputs is not None and len(outputs) == 1 and len(ys) == 1:
        labels = None
        info = arrays[y_names[0]]
        if _loss_name(spec) in SPARSE and info.nbytes <= datahead.LABEL_BYTES:
            labels = datahead.npz_array(source, y_names[0])
        _labels(field, spec, outputs[0], y_names[0], ys[0], labels)


def _check_csv(source, field, data, spec, inputs, outputs) -> None:
    header = datahead.csv_header(source)
    label = _names(data.get("y", "y"))[0]
    if label not in header:
        raise mismatch(field, f"the CSV file has no label column {label!r} "
                       f"(columns: {', '.join(header)})")
    x = data.get("x", "x")
    if x in (None, "x") or (isinstance(x, str) and x not in header):
        features = [c for c in header if c != label]
    else:
        features = _names(x)
    if inputs is not None and len(inputs) == 1:
        rows = None
        _match(field, "input", inputs, [("x", (rows, len(features)))],
               note=f" ({len(features)} feature columns)")
    if outputs is not None and len(outputs) == 1 and _loss_name(spec) in SPARSE:
        values = datahead.csv_column(source, label)
        _labels(field, spec, outputs[0], label, (None,), values)


def _match(field: str, what: str, expected: list, got: list, note: str = "") -> None:
    """Each model input against its array: same rank (Keras's one-axis leeway), same dims."""
    if len(expected) != len(got):
        raise mismatch(field, f"model has {len(expected)} {what}s but data.x names "
                       f"{len(got)} array{'s' if len(got) != 1 else ''}")
    for want, (name, shape) in zip(expected, got):
        have = _adjusted(list(shape), want)
        ok = len(have) == len(want) and all(
            w is None or h is None or w == h for w, h in zip(want[1:], have[1:]))
        if not ok:
            raise mismatch(field, f"model expects {what} {show(want)} but data {name} has "
                           f"shape {show(shape)}{note}")


def _adjusted(shape: list, want: list) -> list:
    """Keras adds or drops a trailing axis of size 1 to match an input's rank."""
    if len(shape) == len(want) - 1 and want[-1] == 1:
        return [*shape, 1]
    if len(shape) == len(want) + 1 and shape[-1] == 1:
        return shape[:-1]
    return shape


def _loss_name(spec: dict) -> str:
    loss = spec["compile"]["loss"]
    if isinstance(loss, dict):
        loss = loss.get("class_name")
    return loss.replace("_", "").lower() if isinstance(loss, str) else ""


def _labels(field, spec, output: list, name: str, shape: tuple, values) -> None:
    """Labels against the output layer for sparse and one-hot classification losses."""
    loss, units = _loss_name(spec), output[-1] if output else None
    shown = spec["compile"]["loss"]
    shown = shown if isinstance(shown, str) else shown.get("class_name")
    if units is None:
        return
    if loss in ONE_HOT and len(shape) >= 2 and shape[-1] != units:
        raise mismatch(field, f"model output {show(output)} has {units} units but labels "
                       f"{name} have shape {show(shape)} ({shape[-1]} classes) for {shown}")
    if loss not in SPARSE:
        return
    if len(shape) > 2 or (len(shape) == 2 and shape[-1] != 1):
        raise mismatch(field, f"{shown} expects integer class labels of shape (samples,) or "
                       f"(samples, 1) but labels {name} have shape {show(shape)}")
    if values is None or not len(values):
        return
    lo, hi = float(np.min(values)), float(np.max(values))
    if lo < 0 or hi >= units or not float(hi).is_integer():
        classes = int(hi) + 1 if float(hi).is_integer() and lo >= 0 else "non-integer"
        raise mismatch(field, f"model output {show(output)} has {units} units but labels "
                       f"{name} range from {lo:g} to {hi:g} ({classes} classes) for {shown}")
