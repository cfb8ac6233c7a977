"""Data in memory: read .npz and .csv arrays, split validation as Keras does, batch deterministically.

The order of epoch ``e`` depends only on (job seed, e), and item ``j`` of a dataset made
for steps ``[start, stop)`` is global batch ``start + j``; so an attempt that resumes at
any global step sees exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from service.errors import InvalidSpec


@dataclass
class Arrays:
    """Inputs and targets; each a single array or a tuple of arrays (several inputs)."""

    x: np.ndarray | tuple[np.ndarray, ...]
    y: np.ndarray | tuple[np.ndarray, ...]

    def __len__(self) -> int:
        return len(_first(self.x))

    def take(self, index) -> Arrays:
        return Arrays(_map(self.x, lambda a: a[index]), _map(self.y, lambda a: a[index]))


def _first(a):
    return a[0] if isinstance(a, tuple) else a


def _map(a, fn):
    """``fn`` over one array, a tuple of them, or a dict of them by output name."""
    if isinstance(a, dict):
        return {k: fn(v) for k, v in a.items()}
    return tuple(fn(v) for v in a) if isinstance(a, tuple) else fn(a)


def load_npz(path: Path, x_names, y_names, url: str) -> Arrays:
    with np.load(path, allow_pickle=False) as data:
        def pick(names):
            names = [names] if isinstance(names, str) else list(names)
            missing = [n for n in names if n not in data.files]
            if missing:
                raise InvalidSpec(f"{url} has no array named {missing[0]!r} "
                                  f"(it has {', '.join(data.files)})")
            arrays = tuple(data[n] for n in names)
            return arrays[0] if len(arrays) == 1 else arrays
        return Arrays(pick(x_names), pick(y_names))


def load_csv(path: Path, x_names, y_names, url: str) -> Arrays:
    """Label column(s) and float32 features; every cell must be a number (pyarrow reads it).

    ``x`` left at ``"x"`` with no such column means "every column but the labels".
    """
    from service.datahead import Unreadable
    from service.tablehead import csv_table

    try:
        with open(path, "rb") as f:
            table = csv_table(f)
    except Unreadable as exc:
        raise InvalidSpec(f"{url}: {exc}") from exc
    header = table.column_names
    labels = [y_names] if isinstance(y_names, str) else list(y_names)
    for label in labels:
        if label not in header:
            raise InvalidSpec(f"{url} has no label column {label!r} "
                              f"(columns: {', '.join(header)})")
    if x_names in (None, "x") or (isinstance(x_names, str) and x_names not in header):
        features = [c for c in header if c not in labels]
    else:
        features = [x_names] if isinstance(x_names, str) else list(x_names)
    missing = [c for c in features if c not in header]
    if missing:
        raise InvalidSpec(f"{url} has no column {missing[0]!r} (columns: {', '.join(header)})")

    def column(name):
        return table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)

    x = np.stack([column(c) for c in features], axis=1).astype(np.float32)
    ys = []
    for label in labels:
        y = column(label)
        ys.append(y.astype(np.int64) if np.all(y == np.round(y)) else y)
    return Arrays(x, ys[0] if len(ys) == 1 else tuple(ys))


def split_validation(arrays: Arrays, fraction: float) -> tuple[Arrays, Arrays | None]:
    """The last ``fraction`` of the samples, before any shuffling, as Keras does."""
    if not fraction:
        return arrays, None
    n = len(arrays)
    split = math.floor(n * (1.0 - fraction))
    if split <= 0 or split >= n:
        raise InvalidSpec(f"validation_split={fraction} leaves no training or validation data")
    return arrays.take(slice(0, split)), arrays.take(slice(split, n))


@dataclass(frozen=True)
class BatchPlan:
    """Which samples make global batch ``g``: a pure function of (seed, epoch, batch)."""

    samples: int
    batch_size: int
    seed: int
    shuffle: bool

    @property
    def steps_per_epoch(self) -> int:
        return max(1, math.ceil(self.samples / self.batch_size))

    def order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.samples)
        rng = np.random.default_rng([int(self.seed) & 0xFFFFFFFF, int(epoch)])
        return rng.permutation(self.samples)


def make_dataset(arrays: Arrays, plan: BatchPlan, start: int, stop: int, block: int = 64):
    """A ``tf.data.Dataset`` yielding global batches ``start`` .. ``stop - 1`` as (x, y).

    Python assembles blocks of up to ``block`` equal-sized batches at once, and tf.data
    splits them: the per-batch cost stays in C++ (a generator per batch cost ~20%).
    """
    import tensorflow as tf

    def spec(a):
        return tf.TensorSpec((None, None, *a.shape[1:]), tf.as_dtype(a.dtype))

    signature = (_map(arrays.x, spec), _map(arrays.y, spec))

    def gen():
        for idx in _blocks(plan, start, stop, block):
            part = arrays.take(idx)
            yield part.x, part.y

    ds = tf.data.Dataset.from_generator(gen, output_signature=signature)
    return ds.unbatch().prefetch(4)


def _blocks(plan: BatchPlan, start: int, stop: int, block: int):
    """Index arrays of shape (k, batch) for runs of whole batches, (1, rest) for a short one."""
    spe, bs = plan.steps_per_epoch, plan.batch_size
    g = start
    while g < stop:
        epoch, b = divmod(g, spe)
        order = plan.order(epoch)
        last = min(stop, (epoch + 1) * spe)  # first global step past this epoch's range
        full_end = min(last, epoch * spe + plan.samples // bs)  # past the whole batches
        while g < full_end:
            k = min(block, full_end - g)
            b = g - epoch * spe
            yield order[b * bs:(b + k) * bs].reshape(k, bs)
            g += k
        if g < last:  # the epoch's short final batch
            b = g - epoch * spe
            yield order[b * bs:].reshape(1, -1)
            g += 1


def scratch_dir(home: str) -> Path:
    path = Path(home) / "cache"
    path.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=path))
