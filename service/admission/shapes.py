"""Shape checks before the GPU: does the data fit the model's inputs, outputs and loss?

Run at submit time when the data can be inspected (a local file, or an S3 object read
through ranged GETs). Each format (.npz headers, CSV cells, a Parquet schema, a TFRecord
file's first Example) becomes named columns of a shape and dtype; then the same checks
apply to all. Messages speak Keras's terms, e.g. ``model expects input
(None, 50, 50, 3) but data x has shape (30, 28, 28, 1)``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from service.admission import datahead, policy, tablehead, targets
from service.admission.allowed import format_of
from service.admission.targets import show
from service.core.config import Settings
from service.core.errors import InvalidSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Column:
    """One named array of the data: its shape (samples first, None if unknown) and dtype."""

    shape: tuple
    dtype: np.dtype
    values: Callable[[], np.ndarray | None] = lambda: None  # small arrays' values


@dataclass(frozen=True)
class View:
    """What a format shows: its columns, what one is called and what the file is."""

    columns: dict[str, Column]
    noun: str  # array, column or feature
    what: str  # ".npz file", "CSV file", ...
    features: str | None = None  # a note when x stands for several columns stacked


def mismatch(field: str, message: str) -> InvalidSpec:
    """A 422 ``invalid_spec`` for ``field`` whose details say a shape check refused it."""
    return InvalidSpec(f"{field}: {message}", details={"field": field, "check": "shape"})


def check(spec: dict, summary: dict, settings: Settings) -> None:
    """Check a normalized spec's data against its model summary; skip what cannot be seen.

    A location that certainly does not exist is a 422 ``data_not_found`` naming the URL.
    """
    data = spec["data"]
    matched = targets.match(data.get("y", "y"), spec, summary)
    for key in ("train", "validation"):
        url = data.get(key)
        if not url:
            continue
        field = f"data.{key}"
        try:
            _check_location(url, field, (spec, summary, matched), settings)
        except datahead.Missing as exc:
            raise InvalidSpec(
                f"{field}: {exc}", code="data_not_found", details={"field": field, "url": url}
            ) from exc
        except datahead.Uninspectable as exc:
            log.debug("not inspecting %s: %s", field, exc)
        except datahead.Unreadable as exc:
            raise InvalidSpec(f"{field}: {exc}", details={"field": field, "check": "data"}) from exc


def _check_location(url: str, field: str, job: tuple, settings: Settings) -> None:
    """One object, or the first shard of a prefix (named in the message if it is refused)."""
    if not url.endswith("/"):
        source = datahead.open_source(url)
        policy.check_size(source.size, field, settings)
        _check_source(source, field, *job)
        return
    shard = datahead.first_shard(url, job[0]["data"].get("format"))
    try:
        _check_source(datahead.open_source(shard), field, *job)
    except (InvalidSpec, datahead.Unreadable) as exc:
        reason = exc.message if isinstance(exc, InvalidSpec) else str(exc)
        details = exc.details if isinstance(exc, InvalidSpec) else {"field": field}
        raise InvalidSpec(
            f"{field}: first shard {shard}: {reason.removeprefix(field + ': ')}",
            details={**details, "shard": shard},
        ) from exc


def _check_source(source, field: str, spec: dict, summary: dict, matched: list) -> None:
    data = spec["data"]
    reader = READERS.get(format_of(source.url, data.get("format")))
    if reader is None:
        return
    labels = [t.array for t in matched]
    view = reader(source, data, labels)
    x = data.get("x", "x")
    x_names = ["x"] if view.features is not None else [x] if isinstance(x, str) else list(x)
    for name in (*x_names, *labels):
        if name not in view.columns:
            raise mismatch(field, _absent(view, name, name in labels))
    _samples(field, view, [*x_names, *labels], spec)
    for name in x_names:
        targets.check_dtype(field, "data.x", "input", name, view.columns[name].dtype, False)
    for t in matched:
        targets.check_dtype(field, t.path, "labels", t.array, view.columns[t.array].dtype, True)
    inputs, outputs = summary.get("input_shapes"), summary.get("output_shapes")
    if inputs is not None:
        _match(field, inputs, [(n, view.columns[n].shape) for n in x_names], view.features)
    for t in matched:
        if outputs is None or t.index is None:
            continue
        column = view.columns[t.array]
        values = column.values() if targets.counts_classes(spec, t) else None
        targets.check_labels(field, spec, t, outputs[t.index], column.shape, values)


def _absent(view: View, name: str, label: bool) -> str:
    stacked = view.features is not None  # "x" then stands for the stacked columns
    names = ", ".join(n for n in sorted(view.columns) if not (stacked and n == "x")) or "none"
    if view.noun == "array":
        return f"the .npz file has no array named {name!r} (it has {names})"
    kind = "label column" if label and view.noun == "column" else view.noun
    return f"the {view.what} has no {kind} {name!r} ({view.noun}s: {names})"


def _samples(field: str, view: View, names: list[str], spec: dict) -> None:
    """One sample count for all arrays; enough samples for ``fit.validation_split``."""
    counts = {n: view.columns[n].shape[0] if view.columns[n].shape else None for n in names}
    known = {c for c in counts.values() if c is not None}
    if len(known) > 1:
        parts = ", ".join(f"{n} has {c}" for n, c in counts.items())
        raise mismatch(field, f"the arrays differ in their number of samples: {parts}")
    if not known:
        return
    n = known.pop()
    if n == 0:
        raise mismatch(field, "the data holds no samples; it needs at least one")
    split = spec.get("fit", {}).get("validation_split") or 0.0
    if field == "data.train" and split and math.floor(n * (1.0 - split)) in (0, n):
        raise mismatch(
            field,
            f"the data holds {n} samples, which is not sufficient to split "
            f"into a training and a validation set with validation_split={split:g} "
            "(as Keras says); give more samples or data.validation",
        )


def _match(field: str, expected: list, got: list, note: str | None) -> None:
    """Each model input against its array: same rank (Keras's one-axis leeway), same dims."""
    if len(expected) != len(got):
        raise mismatch(
            field,
            f"model has {len(expected)} inputs but data.x names "
            f"{len(got)} array{'s' if len(got) != 1 else ''}",
        )
    for want, (name, shape) in zip(expected, got):
        have = targets.adjusted(list(shape), want)
        ok = len(have) == len(want) and all(
            w is None or h is None or w == h for w, h in zip(want[1:], have[1:])
        )
        if not ok:
            raise mismatch(
                field,
                f"model expects input {show(want)} but data {name} has "
                f"shape {show(shape)}{f' ({note})' if note else ''}",
            )


# -- the formats ----------------------------------------------------------------------------


def _npz(source, data: dict, labels: list[str]) -> View:
    arrays = datahead.npz_arrays(source)

    def loader(name, info):
        small = info.nbytes <= datahead.LABEL_BYTES and info.dtype.kind not in "OUS"
        return (lambda: datahead.npz_array(source, name)) if small else (lambda: None)

    return View(
        {n: Column(a.shape, a.dtype, loader(n, a)) for n, a in arrays.items()}, "array", ".npz file"
    )


def _stacked(
    columns: dict[str, Column], data: dict, labels: list[str], rows, named: bool
) -> str | None:
    """``x`` left as ``"x"`` with no such column means every other column, stacked as one
    input (as the workers read CSV and Parquet); ``named``: CSV stacks named columns too.
    The note says how many columns were stacked."""
    x = data.get("x", "x")
    if named and isinstance(x, list) and all(n in columns for n in x):
        features = x
    elif named and isinstance(x, str) and x in columns:
        features = [x]
    elif x in (None, "x") and "x" not in columns:
        skip = {*labels, *_weight_names(data)}
        features = [c for c in columns if c not in skip]
    else:
        return None
    inner = columns[features[0]].shape[1:] if features else ()
    kinds = [columns[c].dtype for c in features if columns[c].dtype.kind in "OUS"]
    columns["x"] = Column((rows, len(features), *inner), kinds[0] if kinds else np.dtype("float32"))
    return f"{len(features)} feature columns"


def _weight_names(data: dict) -> list[str]:
    """The columns ``data.sample_weight`` names (they are not features)."""
    weights = data.get("sample_weight")
    if isinstance(weights, dict):
        return list(weights.values())
    return [weights] if isinstance(weights, str) else list(weights or [])


def _csv(source, data: dict, labels: list[str]) -> View:
    whole = source.size is not None and source.size <= tablehead.CSV_WHOLE_BYTES
    with source.open() as f:
        table = tablehead.csv_table(f, whole=whole)
    rows = table.num_rows if whole else None
    columns = {
        n: Column(
            (rows,), np.dtype("float64"), lambda n=n: table.column(n).to_numpy(zero_copy_only=False)
        )
        for n in table.column_names
    }
    return View(columns, "column", "CSV file", _stacked(columns, data, labels, rows, True))


def _parquet(source, data: dict, labels: list[str]) -> View:
    x = data.get("x", "x")
    wanted = [*labels, *([x] if isinstance(x, str) else x)]
    with source.open() as f:
        rows, schema = tablehead.parquet_columns(f, wanted)
    small = source.size is not None and source.size <= datahead.LABEL_BYTES

    def loader(name, dims, dtype):
        if not small or dims or dtype.kind in "OUS":
            return lambda: None

        def read():
            with source.open() as f:
                return tablehead.parquet_values(f, name)

        return read

    columns = {
        n: Column((rows, *dims), dtype, loader(n, dims, dtype))
        for n, (dims, dtype) in schema.items()
    }
    if any(None in c.shape[1:] for n, c in columns.items() if n in wanted):
        raise datahead.Uninspectable("a list column's width is not known")
    return View(columns, "column", "Parquet file", _stacked(columns, data, labels, rows, False))


def _tfrecord(source, data: dict, labels: list[str]) -> View:
    with source.open() as f:
        features = tablehead.tfrecord_features(f)
    return View(
        {n: Column((None, *dims), dtype) for n, (dims, dtype) in features.items()},
        "feature",
        "TFRecord file",
    )


READERS = {"npz": _npz, "csv": _csv, "parquet": _parquet, "tfrecord": _tfrecord}
