"""Data files by format (.npz, .csv, Parquet, TFRecord), read into arrays or counted.

A data URL names one object (``s3://bucket/train.parquet``, ``file:///data/train.tfrecord``)
or, ending in ``/``, a prefix of shards streamed by :mod:`workers.training.data.shards`.
Objects are fetched through the local download cache (:mod:`workers.training.data.cache`).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from service.admission import allowed, datahead
from service.core.errors import InvalidSpec
from workers.training.data import cache as download_cache
from workers.training.data import memory

SUFFIXES = allowed.SUFFIXES  # one table for the submit-time checks and the workers
FORMATS = allowed.DATA_FORMATS


def format_of(url: str, fmt: str | None) -> str:
    """The format named in the spec, or the one the object's suffix says."""
    kind = allowed.format_of(url, fmt)
    if kind is None:
        raise InvalidSpec(
            f"cannot tell the format of {url} from its suffix; set data.format "
            f"to one of {', '.join(FORMATS)}",
            details={"field": "data.format"},
        )
    return kind


def read(path: Path, fmt: str, x_names, y_names, url: str, sw_names=None) -> memory.Arrays:
    """One local file in ``fmt`` as arrays, with the sample weights ``sw_names`` names;
    targets named by output come as a dict."""
    if isinstance(y_names, dict):
        arrays = read(path, fmt, x_names, list(y_names.values()), url, sw_names)
        ys = arrays.y if isinstance(arrays.y, tuple) else (arrays.y,)
        return memory.Arrays(arrays.x, dict(zip(y_names, ys, strict=True)), arrays.sw)
    if fmt == "npz":
        return memory.load_npz(path, x_names, y_names, url, sw_names)
    if fmt == "csv":
        return memory.load_csv(path, x_names, y_names, url, sw_names)
    if fmt == "parquet":
        return read_parquet(path, x_names, y_names, url, sw_names)
    if fmt == "tfrecord":
        return read_tfrecord(path, x_names, y_names, url, sw_names)
    raise InvalidSpec(f"unsupported data format {fmt!r} for {url}; use one of {', '.join(FORMATS)}")


def count_rows(path: Path, fmt: str, y_names, url: str) -> int:
    """The number of samples in a file, reading as little of it as the format allows."""
    if isinstance(y_names, dict):
        y_names = list(y_names.values())
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    if fmt == "npz":
        name = (y_names if isinstance(y_names, str) else y_names[0]) + ".npy"
        with zipfile.ZipFile(path) as z:
            if name not in z.namelist():
                raise InvalidSpec(f"{url} has no array named {name[:-4]!r}")
            with z.open(name) as f:
                return datahead.npy_header(f)[0][0]
    if fmt == "tfrecord":
        import tensorflow as tf

        return int(tf.data.TFRecordDataset(str(path)).reduce(np.int64(0), lambda n, _: n + 1))
    with open(path, newline="") as f:
        return max(0, sum(1 for line in f if line.strip()) - 1)


def _names(names) -> list[str]:
    return [names] if isinstance(names, str) else list(names)


def _pack(arrays: list[np.ndarray]):
    return arrays[0] if len(arrays) == 1 else tuple(arrays)


def read_parquet(path: Path, x_names, y_names, url: str, sw_names=None) -> memory.Arrays:
    """Columns by name; a column of fixed-length lists becomes a 2-D (or deeper) array.

    As for CSV, ``x`` left at its default ``"x"`` with no such column means "every column
    but the label", stacked as float32 features.
    """
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    columns = table.column_names
    ys = _names(y_names)
    missing = [n for n in ys if n not in columns]
    if missing:
        raise InvalidSpec(f"{url} has no column {missing[0]!r} (columns: {', '.join(columns)})")
    y = _pack([_column(table, n) for n in ys])

    def weight(name):
        if name not in columns:
            raise InvalidSpec(
                f"{url} has no sample weight column {name!r} (columns: {', '.join(columns)})",
                details={"field": "data.sample_weight"},
            )
        return _column(table, name)

    sw = memory.weights(sw_names, weight, url)
    if x_names == "x" and "x" not in columns:
        skip = {*ys, *memory.weight_names(sw_names)}
        features = [c for c in columns if c not in skip]
        x = np.stack([_column(table, c) for c in features], axis=1).astype(np.float32)
        return memory.Arrays(x, y, sw)
    xs = _names(x_names)
    missing = [n for n in xs if n not in columns]
    if missing:
        raise InvalidSpec(f"{url} has no column {missing[0]!r} (columns: {', '.join(columns)})")
    return memory.Arrays(_pack([_column(table, n) for n in xs]), y, sw)


def _column(table, name: str) -> np.ndarray:
    import pyarrow as pa

    col = table.column(name).combine_chunks()
    shape = [len(col)]
    while (
        pa.types.is_list(col.type)
        or pa.types.is_fixed_size_list(col.type)
        or pa.types.is_large_list(col.type)
    ):
        inner = col.flatten()
        width = len(inner) // max(1, len(col))
        if pa.types.is_fixed_size_list(col.type):
            width = col.type.list_size
        elif len(col) and np.any(np.diff(col.offsets.to_numpy()) != width):
            raise InvalidSpec(f"column {name!r} holds lists of different lengths")
        shape.append(width)
        col = inner
    return col.to_numpy(zero_copy_only=False).reshape(shape)


def read_tfrecord(path: Path, x_names, y_names, url: str, sw_names=None) -> memory.Arrays:
    """``tf.train.Example`` records with one feature per name (float or int64 lists).

    A feature of length 1 gives a 1-D array, a longer one a 2-D array; an int64 feature
    ``<name>/shape`` (as in the first record) reshapes each sample, e.g. to ``[8, 8, 1]``.
    """
    import tensorflow as tf

    first = next(iter(tf.data.TFRecordDataset(str(path)).take(1)), None)
    if first is None:
        raise InvalidSpec(f"{url} holds no record")
    example = tf.train.Example.FromString(first.numpy()).features.feature
    names = list(dict.fromkeys(_names(x_names) + _names(y_names) + memory.weight_names(sw_names)))
    spec, shapes = {}, {}
    for name in names:
        if name not in example:
            raise InvalidSpec(
                f"{url} has no feature {name!r} (features: {', '.join(sorted(example))})"
            )
        spec[name] = _feature_spec(example[name], name, url)
        shape_feature = example.get(f"{name}/shape")
        if shape_feature is not None:
            shapes[name] = list(shape_feature.int64_list.value)
    ds = tf.data.TFRecordDataset(str(path)).batch(4096).map(lambda s: tf.io.parse_example(s, spec))
    parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for batch in ds.as_numpy_iterator():
        for name in names:
            parts[name].append(batch[name])
    out = {}
    for name in names:
        a = np.concatenate(parts[name])
        out[name] = (
            a.reshape(len(a), *shapes[name])
            if name in shapes
            else (a[:, 0] if a.shape[1] == 1 else a)
        )
    return memory.Arrays(
        _pack([out[n] for n in _names(x_names)]),
        _pack([out[n] for n in _names(y_names)]),
        memory.weights(sw_names, out.__getitem__, url),
    )


def _feature_spec(feature, name: str, url: str):
    import tensorflow as tf

    kind = feature.WhichOneof("kind")
    if kind == "float_list":
        return tf.io.FixedLenFeature([len(feature.float_list.value)], tf.float32)
    if kind == "int64_list":
        return tf.io.FixedLenFeature([len(feature.int64_list.value)], tf.int64)
    raise InvalidSpec(f"feature {name!r} of {url} is a {kind}; use float or int64 lists")


def load(url: str, x_names, y_names, fmt: str | None, cache, sw_names=None):
    """Arrays for one object, or a :class:`~workers.training.shards.ShardSet` for a prefix."""
    if url.endswith("/"):
        from workers.training.data.shards import ShardSet

        return ShardSet.open(url, x_names, y_names, fmt, cache, sw_names)
    fmt = format_of(url, fmt)
    return read(download_cache.fetch(url, cache), fmt, x_names, y_names, url, sw_names)


def rows_cached(path: Path, fmt: str, y_names, url: str, tag: str | None) -> int:
    """:func:`count_rows`, remembered beside a cached download (keyed by its ETag)."""
    if tag is None:
        return count_rows(path, fmt, y_names, url)
    sidecar = path.with_name(path.name + ".rows.json")
    try:
        return int(json.loads(sidecar.read_text())["rows"])
    except (OSError, ValueError, KeyError):
        rows = count_rows(path, fmt, y_names, url)
        sidecar.write_text(json.dumps({"rows": rows}))
        return rows


def split_validation(train, fraction: float):
    """``memory.split_validation`` for arrays; a streamed prefix needs ``data.validation``."""
    if not isinstance(train, memory.Arrays) and fraction:
        raise InvalidSpec(
            "fit.validation_split needs the data in memory; for a prefix of "
            "shards, give data.validation instead",
            details={"field": "fit.validation_split"},
        )
    if not isinstance(train, memory.Arrays):
        return train, None
    return memory.split_validation(train, fraction)


def dataset(source, plan: memory.BatchPlan, start: int, stop: int, outputs=None):
    """Global batches ``start`` .. ``stop - 1`` of arrays or of a streamed prefix.

    ``outputs``: the model's output names, which order sample weights given by name.
    """
    if isinstance(source, memory.Arrays):
        return memory.make_dataset(source.for_outputs(outputs), plan, start, stop)
    return source.dataset(plan, start, stop, outputs)


def validation_data(val, batch_size: int, outputs=None):
    """What ``fit`` takes as ``validation_data``: arrays, or a streamed prefix in order."""
    if val is None:
        return None
    if isinstance(val, memory.Arrays):
        return val.for_outputs(outputs).batch()
    plan = memory.BatchPlan(len(val), batch_size, 0, False)
    return val.dataset(plan, 0, plan.steps_per_epoch, outputs)
