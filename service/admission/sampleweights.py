"""Submit-time checks of ``data.sample_weight``: one weight per sample, per model output.

``data.sample_weight`` names an array of the .npz file (or a column of a CSV or Parquet
file, a feature of a TFRecord file), a list of them (one per model output, in order), or
an object of output name to name. What can be seen without training is checked here: the
named arrays exist, hold one weight per sample, and a dict names the model's outputs.
"""

from __future__ import annotations

import logging

from service.admission import datahead
from service.admission.allowed import format_of
from service.core.errors import InvalidSpec

log = logging.getLogger(__name__)
FIELD = "data.sample_weight"


def refuse(message: str) -> InvalidSpec:
    """A 422 ``invalid_spec`` naming ``data.sample_weight``."""
    return InvalidSpec(f"{FIELD}: {message}", details={"field": FIELD, "check": "data"})


def output_names(model: dict) -> list[str]:
    """The output names a model config declares (a Sequential's: its last layer's)."""
    cfg = model.get("config") or {}
    outputs = cfg.get("output_layers")
    if isinstance(outputs, list) and outputs and isinstance(outputs[0], list):
        return [str(o[0]) for o in outputs]
    if isinstance(outputs, list) and len(outputs) == 3 and isinstance(outputs[0], str):
        return [outputs[0]]
    layers = cfg.get("layers") or []
    return [str(layers[-1].get("config", {}).get("name"))] if layers else []


def names_of(value) -> list[str]:
    if isinstance(value, dict):
        return [str(v) for v in value.values()]
    return [value] if isinstance(value, str) else list(value)


def check(spec: dict, summary: dict | None) -> None:
    """Refuse a ``data.sample_weight`` that cannot fit the model or the training data."""
    value = spec["data"].get("sample_weight")
    if value is None:
        return
    outputs = output_names(spec["model"])
    count = len((summary or {}).get("output_shapes") or outputs) or 1
    if isinstance(value, dict) and len(outputs) > 1 and set(value) != set(outputs):
        raise refuse(
            f"names outputs {', '.join(sorted(value))} but the model's outputs are "
            f"{', '.join(outputs)}; give one weight array per output name"
        )
    if isinstance(value, list) and len(value) not in (1, count):
        raise refuse(
            f"lists {len(value)} weight arrays but the model has {count} output"
            f"{'s' if count != 1 else ''}; give one per output, in order"
        )
    url = spec["data"]["train"]
    try:
        source = datahead.open_source(url)
        _check_source(source, spec["data"], names_of(value))
    except datahead.Uninspectable as exc:
        log.debug("not inspecting %s: %s", FIELD, exc)
    except datahead.Unreadable:
        return  # the shape checks report an unreadable file in their own words


def _check_source(source, data: dict, names: list[str]) -> None:
    fmt = format_of(source.url, data.get("format"))
    if fmt == "npz":
        _check_npz(source, data, names)
    elif fmt == "csv":
        from service.admission.tablehead import csv_table

        with source.open() as f:
            header = csv_table(f, whole=False).column_names
        _present(names, header, "the CSV file has no column", "columns")
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        with source.open() as f:
            columns = pq.ParquetFile(f).schema_arrow.names
        _present(names, columns, "the Parquet file has no column", "columns")


def _present(names: list[str], have: list[str], what: str, plural: str) -> None:
    for name in names:
        if name not in have:
            raise refuse(f"{what} {name!r} ({plural}: {', '.join(have) or 'none'})")


def _check_npz(source, data: dict, names: list[str]) -> None:
    arrays = datahead.npz_arrays(source)
    _present(names, sorted(arrays), "the .npz file has no array named", "it has")
    y = data.get("y", "y")
    ref = y if isinstance(y, str) else next(iter(y.values())) if isinstance(y, dict) else y[0]
    samples = arrays[ref].shape[0] if ref in arrays and arrays[ref].shape else None
    for name in names:
        info = arrays[name]
        if info.dtype.kind not in "biuf":
            raise refuse(f"array {name!r} holds {info.dtype}, not numbers")
        if not info.shape or (samples is not None and info.shape[0] != samples):
            have = info.shape[0] if info.shape else "no"
            raise refuse(
                f"array {name!r} has {have} weights but the data has {samples} "
                f"samples ({ref!r}); give one weight per sample"
            )
