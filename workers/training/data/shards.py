"""A prefix of many data shards streamed through tf.data, one shard in memory at a time.

The order of epoch ``e`` is a pure function of (seed, e): a seeded permutation of the
shards, then a seeded permutation of the rows inside each shard, read as one stream and
cut into batches (a batch may span two shards). Starting at a mid-epoch global step is a
computation over the shards' row counts, not a saved reader state, so a resumed attempt
sees exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np

from service.core.errors import InvalidSpec
from service.storage import S3Store
from workers.training.data import cache as download_cache
from workers.training.data import formats, memory


@dataclass(frozen=True)
class Shard:
    """One object of the prefix: its URL, format, ETag (None for a local file) and rows."""

    url: str
    fmt: str
    tag: str | None
    rows: int


def list_prefix(url: str, fmt: str | None) -> list[tuple[str, str, str | None]]:
    """``(url, format, etag)`` of every data object under ``url``, sorted by name.

    Objects whose suffix names no known format (``_SUCCESS``, manifests) are skipped, and
    so are those of another format than ``fmt`` when it is given.
    """
    parsed = urlparse(url)
    found = []
    if parsed.scheme == "s3":
        store = S3Store(parsed.netloc)
        pages = store.client.get_paginator("list_objects_v2").paginate(
            Bucket=parsed.netloc, Prefix=parsed.path.lstrip("/")
        )
        for page in pages:
            for obj in page.get("Contents", []):
                found.append((f"s3://{parsed.netloc}/{obj['Key']}", obj.get("ETag")))
    elif parsed.scheme == "file":
        folder = Path(unquote(parsed.path))
        if not folder.is_dir():
            raise InvalidSpec(f"data folder {url} does not exist")
        found = [(p.as_uri(), None) for p in folder.rglob("*") if p.is_file()]
    out = []
    for item_url, tag in sorted(found):
        name = Path(urlparse(item_url).path).name
        kind = formats.SUFFIXES.get(Path(name).suffix.lower())
        if kind is None or name.startswith((".", "_")) or (fmt and kind != fmt):
            continue
        out.append((item_url, kind, tag))
    if not out:
        raise InvalidSpec(
            f"no data shard under {url} (known suffixes: {', '.join(sorted(formats.SUFFIXES))})"
        )
    return out


def _cat(parts: list):
    if parts[0] is None:
        return None
    if isinstance(parts[0], dict):
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    if isinstance(parts[0], tuple):
        return tuple(np.concatenate([p[i] for p in parts]) for i in range(len(parts[0])))
    return np.concatenate(parts)


def concat(parts: list[memory.Arrays]) -> memory.Arrays:
    """The samples of ``parts``, one after another."""
    if len(parts) == 1:
        return parts[0]
    return memory.Arrays(
        _cat([p.x for p in parts]), _cat([p.y for p in parts]), _cat([p.sw for p in parts])
    )


class ShardSet:
    """The shards under a prefix; ``len()`` and ``take(slice(0, k))`` like ``memory.Arrays``."""

    def __init__(self, shards: list[Shard], x_names, y_names, cache, sw_names=None):
        self.shards, self.x_names, self.y_names, self.cache = shards, x_names, y_names, cache
        self.sw_names = sw_names
        self._memo: tuple[int, memory.Arrays] | None = None

    @classmethod
    def open(cls, url: str, x_names, y_names, fmt: str | None, cache, sw_names=None) -> ShardSet:
        """List the prefix, download each shard into the cache once, and count its rows."""
        shards = []
        for item_url, kind, tag in list_prefix(url, fmt):
            path = download_cache.fetch(item_url, cache, tag)
            rows = formats.rows_cached(path, kind, y_names, item_url, tag)
            if rows:
                shards.append(Shard(item_url, kind, tag, rows))
        if not shards:
            raise InvalidSpec(f"the shards under {url} hold no sample")
        return cls(shards, x_names, y_names, cache, sw_names)

    def __len__(self) -> int:
        return sum(s.rows for s in self.shards)

    def read(self, i: int) -> memory.Arrays:
        """Shard ``i`` (in listing order) as arrays; the last one read is kept."""
        if self._memo is None or self._memo[0] != i:
            s = self.shards[i]
            path = download_cache.fetch(s.url, self.cache, s.tag)
            arrays = formats.read(path, s.fmt, self.x_names, self.y_names, s.url, self.sw_names)
            if len(arrays) != s.rows:
                raise InvalidSpec(f"shard {s.url} changed while training")
            self._memo = (i, arrays)
        return self._memo[1]

    def take(self, index: slice) -> memory.Arrays:
        """The first samples in listing order (``slice(0, k)`` only: a model-building sample)."""
        if not isinstance(index, slice) or index.start not in (None, 0) or index.step:
            raise TypeError("ShardSet.take supports slice(0, k) only")
        need, parts, i = index.stop, [], 0
        while need > 0 and i < len(self.shards):
            part = self.read(i).take(slice(0, need))
            parts.append(part)
            need -= len(part)
            i += 1
        return concat(parts)

    def shard_order(self, epoch: int, seed: int, shuffle: bool) -> np.ndarray:
        if not shuffle:
            return np.arange(len(self.shards))
        return np.random.default_rng([seed & 0xFFFFFFFF, epoch, 0]).permutation(len(self.shards))

    def row_order(self, epoch: int, i: int, seed: int, shuffle: bool) -> np.ndarray:
        rows = self.shards[i].rows
        if not shuffle:
            return np.arange(rows)
        return np.random.default_rng([seed & 0xFFFFFFFF, epoch, 1 + i]).permutation(rows)

    def batches(self, plan: memory.BatchPlan, start: int, stop: int):
        """Global batches ``start`` .. ``stop - 1`` as arrays, in order."""
        for block in self.blocks(plan, start, stop):
            for i in range(len(memory._first(block.x))):
                yield block.take(i)

    def blocks(self, plan: memory.BatchPlan, start: int, stop: int, most: int = 64):
        """The same batches, up to ``most`` at a time as arrays of shape (k, batch, ...)."""
        spe = plan.steps_per_epoch
        g = start
        while g < stop:
            epoch, first = divmod(g, spe)
            last = min(stop, (epoch + 1) * spe) - epoch * spe
            yield from self._epoch(plan, epoch, first, last, most)
            g = epoch * spe + last

    def _epoch(self, plan: memory.BatchPlan, epoch: int, first: int, last: int, most: int):
        """Batches ``first`` .. ``last - 1`` of one epoch: skip rows, then cut the stream."""
        bs, skip, b = plan.batch_size, first * plan.batch_size, first
        pending: list[memory.Arrays] = []
        for i in self.shard_order(epoch, plan.seed, plan.shuffle):
            rows = self.shards[i].rows
            if skip >= rows:
                skip -= rows
                continue
            order = self.row_order(epoch, i, plan.seed, plan.shuffle)[skip:]
            skip = 0
            stream = concat([*pending, self.read(int(i)).take(order)])
            n, at = len(stream), 0
            while n - at >= bs and b < last:
                k = min(most, (n - at) // bs, last - b)
                yield _blocked(stream.take(slice(at, at + k * bs)), k)
                at, b = at + k * bs, b + k
            if b == last:
                return
            pending = [stream.take(slice(at, n))] if at < n else []
        if pending and b < last:
            yield _blocked(concat(pending), 1)  # the epoch's short final batch

    def dataset(self, plan: memory.BatchPlan, start: int, stop: int, outputs=None):
        """A ``tf.data.Dataset`` of global batches ``start`` .. ``stop - 1`` as (x, y),
        or (x, y, sw) with sample weights (ordered by the model's ``outputs``).

        Python cuts blocks of batches and tf.data splits them, so the per-batch cost
        stays in C++ (as ``memory.make_dataset`` does for arrays).
        """
        import tensorflow as tf

        sample = self.take(slice(0, 1)).for_outputs(outputs)

        def spec(a):
            return tf.TensorSpec((None, None, *a.shape[1:]), tf.as_dtype(a.dtype))

        signature = tuple(memory._map(a, spec) for a in sample.batch())

        def gen():
            for block in self.blocks(plan, start, stop):
                yield block.for_outputs(outputs).batch()

        ds = tf.data.Dataset.from_generator(gen, output_signature=signature).unbatch()
        # A known length lets Keras end an evaluation pass without running the stream dry.
        return ds.apply(tf.data.experimental.assert_cardinality(stop - start)).prefetch(4)


def _blocked(arrays: memory.Arrays, k: int) -> memory.Arrays:
    """``k`` batches of equal size as arrays of shape (k, batch, ...)."""
    return arrays.map(lambda a: a.reshape(k, -1, *a.shape[1:]))
