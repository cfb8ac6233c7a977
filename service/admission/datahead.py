"""Look inside data files at submit time without loading them: where they are, .npz headers.

An S3 object is read through ranged GETs, so only the zip directory and array headers
travel; a local file is opened in place. Small label arrays may be read whole.
"""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse

import numpy as np

from service.admission.allowed import SUFFIXES

MAX_RANGE_REQUESTS = 64
LABEL_BYTES = 64 << 20  # label arrays up to this size may be read to count classes


class Uninspectable(Exception):
    """The data cannot be looked at now (absent, unreachable, too costly); skip the checks."""


class Unreadable(Exception):
    """The data was fetched but is not what its format says (a corrupt .npz, an empty CSV)."""


class Missing(Exception):
    """The data location certainly does not exist: no such file, no such S3 key, no shard."""


@dataclass
class Source:
    """One data object opened for reading: its size and a way to open it."""

    url: str
    size: int | None
    opener: object  # callable returning a binary file object

    def open(self):
        return self.opener()


def open_source(url: str) -> Source:
    """A readable view of ``url`` (file:// or s3://).

    Raises Missing if the object does not exist, Uninspectable if it cannot be reached.
    """
    parsed = urlparse(url)
    if parsed.scheme == "file":
        path = Path(os.path.realpath(unquote(parsed.path)))
        if path.is_dir():
            raise Unreadable("it is a folder; end the URL with / to read the data shards in it")
        if not path.is_file():
            raise Missing(f"data file {url} does not exist")
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
    except ClientError as exc:
        if _not_found(exc):
            raise Missing(f"data object {url} does not exist") from exc
        raise Uninspectable(f"cannot reach {url}") from exc
    except (BotoCoreError, KeyError, ValueError) as exc:
        raise Uninspectable(f"cannot reach {url}") from exc
    return Source(
        url, size, lambda: io.BufferedReader(_RangeFile(client, bucket, key, size), 256 << 10)
    )


def _not_found(exc) -> bool:
    """True for S3's answer that a bucket or key does not exist (not for access denied)."""
    return exc.response.get("Error", {}).get("Code") in (
        "404",
        "NoSuchKey",
        "NotFound",
        "NoSuchBucket",
    )


def first_shard(url: str, fmt: str | None) -> str:
    """The URL of the first data shard under the prefix ``url``, in the workers' order.

    Names that start with ``.`` or ``_`` (``_SUCCESS``, manifests), unknown suffixes and
    other formats than ``fmt`` are not shards. Raises Missing if there is none.
    """
    parsed = urlparse(url)
    names = _s3_keys(url, parsed) if parsed.scheme == "s3" else _file_names(url, parsed)
    for name in names:
        base = name.rsplit("/", 1)[-1]
        kind = SUFFIXES.get(PurePosixPath(base).suffix.lower())
        if kind is not None and not base.startswith((".", "_")) and fmt in (None, kind):
            return name
    raise Missing(f"no data shard under {url} (known suffixes: {', '.join(sorted(SUFFIXES))})")


def _s3_keys(url: str, parsed):
    from botocore.exceptions import BotoCoreError, ClientError

    from service.storage import S3Store

    bucket = parsed.netloc
    try:
        pages = (
            S3Store(bucket)
            .client.get_paginator("list_objects_v2")
            .paginate(Bucket=bucket, Prefix=parsed.path.lstrip("/"))
        )
        for page in pages:
            for obj in page.get("Contents", []):
                yield f"s3://{bucket}/{obj['Key']}"
    except ClientError as exc:
        if _not_found(exc):
            raise Missing(f"data bucket of {url} does not exist") from exc
        raise Uninspectable(f"cannot list {url}") from exc
    except BotoCoreError as exc:
        raise Uninspectable(f"cannot list {url}") from exc


def _file_names(url: str, parsed) -> list[str]:
    folder = Path(os.path.realpath(unquote(parsed.path)))
    if not folder.is_dir():
        raise Missing(f"data folder {url} does not exist")
    return sorted(p.as_uri() for p in folder.rglob("*") if p.is_file())


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
            body = self.client.get_object(
                Bucket=self.bucket, Key=self.key, Range=f"bytes={self.pos}-{end}"
            )["Body"].read()
        except Exception as exc:  # botocore's errors vary; the checks are skipped
            raise Uninspectable(f"cannot read s3://{self.bucket}/{self.key}") from exc
        buffer[: len(body)] = body
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
                    shape, dtype = npy_header(member)
                out[info.filename[:-4]] = ArrayInfo(
                    shape, dtype, int(np.prod(shape)) * dtype.itemsize
                )
            return out
    except (zipfile.BadZipFile, ValueError, EOFError, OSError) as exc:
        raise Unreadable("it is not a readable .npz file") from exc


def npz_array(source: Source, name: str) -> np.ndarray:
    """One array of an .npz file, read whole (callers keep this to small arrays)."""
    with source.open() as f, zipfile.ZipFile(f) as zf, zf.open(f"{name}.npy") as member:
        return np.lib.format.read_array(member, allow_pickle=False)


def npy_header(member) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype an open ``.npy`` member states, read from its header only."""
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(member)
    elif version in ((2, 0), (3, 0)):
        shape, _, dtype = np.lib.format.read_array_header_2_0(member)
    else:
        raise ValueError(f"unknown .npy version {version}")
    return tuple(int(d) for d in shape), dtype
