"""Columns of CSV, Parquet and TFRecord data, read with pyarrow (and TF's Example proto).

The API calls these at submit time on a file object (local, or S3 through ranged reads)
to see names, dtypes and shapes; the workers read CSV through :func:`csv_table` too, so a
bad cell is reported in the same words (column, row and value) wherever it is found.
"""

from __future__ import annotations

import struct

import numpy as np

from service.admission.datahead import Uninspectable, Unreadable

CSV_WHOLE_BYTES = 16 << 20  # CSV files up to this size are read whole at submit


def csv_table(f, whole: bool = True):
    """A pyarrow Table of a CSV file whose every cell is a number (or true/false).

    With ``whole=False`` only the first block is read (a large file's head). Raises
    Unreadable naming the column, the row (1 is the first after the header) and the value.
    """
    import pyarrow as pa
    import pyarrow.csv as pc

    try:
        if whole:
            table = pc.read_csv(f)
        else:
            reader = pc.open_csv(f, read_options=pc.ReadOptions(block_size=1 << 20))
            table = pa.Table.from_batches([reader.read_next_batch()])
    except StopIteration:
        table = None
    except pa.ArrowInvalid as exc:
        text = str(exc)
        if "Empty CSV file" in text:
            raise Unreadable("it is an empty CSV file") from exc
        raise Unreadable(f"it is not a well-formed CSV file: {text[:200]}") from exc
    if table is None or table.num_rows == 0:
        raise Unreadable("the CSV file has a header but no rows; it needs at least one sample")
    for name, column in zip(table.column_names, table.columns):
        _check_csv_column(name, column)
    return table


def _check_csv_column(name: str, column) -> None:
    import pyarrow as pa

    if column.null_count:
        row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
        raise Unreadable(
            f"column {name!r}, row {row + 1} is empty or NA; every cell needs a number"
        )
    kind = column.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
        return
    values = column.cast(pa.string()).to_pylist()
    row = next((i for i, v in enumerate(values) if not _is_number(v)), 0)
    raise Unreadable(
        f"column {name!r}, row {row + 1} has a non-numeric value "
        f"{values[row][:80]!r}; every cell must be a number (encode categories "
        "as integers 0 .. n-1)"
    )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return "_" not in text


def numpy_dtype(arrow_type) -> np.dtype:
    """The NumPy dtype of a pyarrow scalar type (strings as ``U``, bytes as ``S``)."""
    import pyarrow as pa

    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return np.dtype("U")
    if pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type):
        return np.dtype("S")
    try:
        return np.dtype(arrow_type.to_pandas_dtype())
    except (NotImplementedError, TypeError):
        return np.dtype("O")


def parquet_columns(f, names: list[str]) -> tuple[int, dict[str, tuple[tuple, np.dtype]]]:
    """The row count and, for each column, ``(dims per sample, dtype)`` of a Parquet file.

    List columns take their width from the first row (fixed-size lists from their type).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(f)
        schema = pf.schema_arrow
    except (pa.ArrowException, OSError) as exc:
        raise Unreadable("it is not a readable Parquet file") from exc
    rows = pf.metadata.num_rows
    if rows == 0:
        raise Unreadable("the Parquet file holds no rows; it needs at least one sample")
    wanted = [n for n in names if n in schema.names]
    first = next(pf.iter_batches(batch_size=1, columns=wanted), None) if wanted else None
    out = {}
    for name in schema.names:
        kind, dims = schema.field(name).type, []
        value = first.column(name)[0].as_py() if first is not None and name in wanted else None
        while (
            pa.types.is_list(kind)
            or pa.types.is_large_list(kind)
            or pa.types.is_fixed_size_list(kind)
        ):
            width = (
                kind.list_size
                if pa.types.is_fixed_size_list(kind)
                else (len(value) if isinstance(value, list) else None)
            )
            dims.append(width)
            value = value[0] if isinstance(value, list) and value else None
            kind = kind.value_type
        out[name] = (tuple(dims), numpy_dtype(kind))
    return rows, out


def parquet_values(f, name: str) -> np.ndarray:
    """One scalar column of a Parquet file, read whole (callers keep this to small files)."""
    import pyarrow.parquet as pq

    return pq.read_table(f, columns=[name]).column(name).to_numpy()


def tfrecord_features(f) -> dict[str, tuple[tuple, np.dtype]]:
    """``(dims per sample, dtype)`` of each feature of a TFRecord file's first Example.

    A feature of length 1 is a scalar, a longer one a vector; ``<name>/shape`` reshapes.
    """
    header = f.read(12)
    if len(header) < 12:
        raise Unreadable("the TFRecord file holds no record; it needs at least one sample")
    (length,) = struct.unpack("<Q", header[:8])
    if length > 64 << 20:
        raise Unreadable("it is not a readable TFRecord file")
    payload = f.read(length)
    try:  # lazily, only for TFRecord data; an API without TensorFlow skips this check
        from tensorflow.core.example import example_pb2
    except ImportError as exc:
        raise Uninspectable("reading a TFRecord file needs TensorFlow") from exc

    try:
        features = example_pb2.Example.FromString(payload).features.feature
    except Exception as exc:  # protobuf's DecodeError
        raise Unreadable("its first record is not a tf.train.Example") from exc
    out = {}
    for name, feature in features.items():
        kind = feature.WhichOneof("kind")
        values = getattr(feature, kind).value if kind else []
        dtype = {"float_list": np.dtype("float32"), "int64_list": np.dtype("int64")}.get(
            kind, np.dtype("S")
        )
        shape = features.get(f"{name}/shape")
        if shape is not None:
            dims = tuple(int(d) for d in shape.int64_list.value)
        else:
            dims = () if len(values) == 1 else (len(values),)
        out[name] = (dims, dtype)
    return out
