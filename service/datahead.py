"""Look inside data files at submit time without loading them: .npz headers, CSV columns.

An S3 object is read through ranged GETs, so only the zip directory and array headers
travel; a local file is opened in place. Small label arrays may be read whole.
"""

from __future__ import annotations

import csv
import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np

MAX_RANGE_REQUESTS = 64
LABEL_BYTES = 64 << 20  # label arrays up to this size may be read to count classes


class Uninspectable(Exception):
    """The data cannot be looked at now (absent, unreachable, too costly); skip the checks."""


class Unreadable(Exception):
    """The data was fetched but is not what its format says (a corrupt .npz, an empty CSV)."""


@dataclass
class Source:
    """One data object opened for reading: its size and a way to open it."""

    url: str
    size: int | None
    opener: object  # callable returning a binary file object

    def open(self):
        return self.opener()


def open_source(url: str) -> Source:
    """A readable view of ``url`` (file:// or s3://); Uninspectable if it is not there."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        path = Path(os.path.realpath(unquote(parsed.path)))
        if not path.is_file():
            raise Uninspectable(f"{url} does not exist here")
        return Source(url, path.stat().st_size, lambda: open(path, "rb"))
    if parsed.scheme == "s3":
        return _s3_source(url, parsed.netloc, parsed.path.lstrip("/"))
    raise Uninspectable(f"cannot inspect {parsed.scheme}:// data")


def _s3_source(url: str, bucket: str, key: str) -> Source:
    from botocore.exceptions import BotoCoreError, ClientError

    from service.storage import S3Store

    try:
        client = S3Store(bucket).client
        size = int(client.head_object(Bucket=bucket, Key=key)["ContentLength"])
    except (BotoCoreError, ClientError, KeyError, ValueError) as exc:
        raise Uninspectable(f"cannot reach {url}") from exc
    return Source(url, size,
                  lambda: io.BufferedReader(_RangeFile(client, bucket, key, size), 256 << 10))


class _RangeFile(io.RawIOBase):
    """A seekable read-only file over an S3 object, one ranged GET per buffer refill."""

    def __init__(self, client, bucket: str, key: str, size: int):
        self.client, self.bucket, self.key, self.size = client, bucket, key, size
        self.pos, self.requests = 0, 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self.pos

    def seek(self, offset, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, buffer):
        if self.pos >= self.size or not len(buffer):
            return 0
        self.requests += 1
        if self.requests > MAX_RANGE_REQUESTS:
            raise Uninspectable("too many reads to inspect this object")
        end = min(self.size, self.pos + len(buffer)) - 1
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.key,
                                          Range=f"bytes={self.pos}-{end}")["Body"].read()
        except Exception as exc:  # botocore's errors vary; the checks are skipped
            raise Uninspectable(f"cannot read s3://{self.bucket}/{self.key}") from exc
        buffer[:len(body)] = body
        self.pos += len(body)
        return len(body)


@dataclass(frozen=True)
class ArrayInfo:
    """An array's shape and dtype as its .npy header states them."""

    shape: tuple[int, ...]
    dtype: np.dtype
    nbytes: int


def npz_arrays(source: Source) -> dict[str, ArrayInfo]:
    """The arrays of an .npz file by name, from their headers only."""
    try:
        with source.open() as f, zipfile.ZipFile(f) as zf:
            out = {}
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with zf.open(info) as member:
                    shape, dtype = _npy_header(member)
                out[info.filename[:-4]] = ArrayInfo(shape, dtype,
                                                    int(np.prod(shape)) * dtype.itemsize)
            return out
    except (zipfile.BadZipFile, ValueError, EOFError, OSError) as exc:
        raise Unreadable("it is not a readable .npz file") from exc


def npz_array(source: Source, name: str) -> np.ndarray:
    """One array of an .npz file, read whole (callers keep this to small arrays)."""
    with source.open() as f, zipfile.ZipFile(f) as zf, zf.open(f"{name}.npy") as member:
        return np.lib.format.read_array(member, allow_pickle=False)


def _npy_header(member) -> tuple[tuple[int, ...], np.dtype]:
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(member)
    elif version in ((2, 0), (3, 0)):
        shape, _, dtype = np.lib.format.read_array_header_2_0(member)
    else:
        raise ValueError(f"unknown .npy version {version}")
    return tuple(int(d) for d in shape), dtype


def csv_header(source: Source) -> list[str]:
    """The column names of a CSV file (its first line)."""
    with source.open() as f:
        line = f.readline(1 << 20).decode("utf-8", "replace")
    header = next(csv.reader([line]), None)
    if not header:
        raise Unreadable("it is an empty CSV file")
    return [h.strip() for h in header]


def csv_column(source: Source, name: str) -> np.ndarray | None:
    """The values of one CSV column, if the file is small enough to read; else None."""
    if source.size is None or source.size > LABEL_BYTES:
        return None
    with source.open() as f:
        reader = csv.reader(io.TextIOWrapper(f, "utf-8", errors="replace", newline=""))
        header = [h.strip() for h in next(reader, [])]
        if name not in header:
            return None
        col = header.index(name)
        try:
            return np.asarray([float(r[col]) for r in reader if r], dtype=np.float64)
        except (ValueError, IndexError):
            return None
