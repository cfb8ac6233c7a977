"""Data in memory: read .npz and .csv arrays, split validation as Keras does, batch deterministically.

Sample weights travel with the samples (``Arrays.sw``) and reach Keras as the third
element of each batch, ``(x, y, sample_weight)``, exactly as ``model.fit(sample_weight=...)``
would pass them.

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

from service.core.errors import InvalidSpec


@dataclass
class Arrays:
    """Inputs, targets and sample weights; each a single array or a tuple of arrays.

    ``sw`` is None (unweighted), one array, a tuple (one per output, in order) or a dict
    keyed by output name until :meth:`for_outputs` orders it as the model's outputs.
    """

    x: np.ndarray | tuple[np.ndarray, ...]
    y: np.ndarray | tuple[np.ndarray, ...]
    sw: np.ndarray | tuple[np.ndarray, ...] | dict[str, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(_first(self.x))

    def map(self, fn) -> Arrays:
        """``fn`` applied to every array."""
        return Arrays(
            _map(self.x, fn), _map(self.y, fn), None if self.sw is None else _map(self.sw, fn)
        )

    def take(self, index) -> Arrays:
        return self.map(lambda a: a[index])

    def batch(self) -> tuple:
        """What one element of a dataset for ``fit`` holds: ``(x, y)`` or ``(x, y, sw)``."""
        return (self.x, self.y) if self.sw is None else (self.x, self.y, self.sw)

    def for_outputs(self, outputs: list[str] | None) -> Arrays:
        """Sample weights keyed by output name, put in the order of the model's outputs.

        With sample weights, targets keyed by output name are put in that order too: Keras
        3.15 cannot weigh a dict of targets of a model whose outputs are a list.
        """
        if (
            self.sw is not None
            and isinstance(self.y, dict)
            and outputs
            and set(self.y) == set(outputs)
        ):
            ys = tuple(self.y[n] for n in outputs)
            return Arrays(self.x, ys if len(ys) > 1 else ys[0], self.sw).for_outputs(outputs)
        if not isinstance(self.sw, dict):
            return self
        names = list(outputs or [])
        if set(self.sw) != set(names) and not (len(names) <= 1 and len(self.sw) == 1):
            raise InvalidSpec(
                f"data.sample_weight names outputs {', '.join(sorted(self.sw))} "
                f"but the model's outputs are {', '.join(names)}",
                details={"field": "data.sample_weight"},
            )
        if not isinstance(self.y, (tuple, dict)):
            return Arrays(self.x, self.y, next(iter(self.sw.values())))
        y = tuple(self.y[n] for n in names) if isinstance(self.y, dict) else self.y
        return Arrays(self.x, y, tuple(self.sw[n] for n in names))


def _first(a):
    return a[0] if isinstance(a, tuple) else a


def _map(a, fn):
    """``fn`` over one array, a tuple of them, or a dict of them by output name."""
    if isinstance(a, dict):
        return {k: fn(v) for k, v in a.items()}
    return tuple(fn(v) for v in a) if isinstance(a, tuple) else fn(a)


def weights(names, get, url: str):
    """Sample weights named by ``data.sample_weight``, as float32 (as Keras casts them).

    Args:
        names: None, an array or column name, a list of them (one per output) or a dict
            of output name to name.
        get: returns the array of one name (raising InvalidSpec when it is absent).
        url: the data file, for messages.
    """
    if names is None:
        return None

    def one(name):
        w = np.asarray(get(name))
        if w.dtype.kind not in "biuf":
            raise InvalidSpec(
                f"sample weights {name!r} of {url} are {w.dtype}, not numbers",
                details={"field": "data.sample_weight"},
            )
        return w.astype(np.float32)

    if isinstance(names, dict):
        return {str(k): one(v) for k, v in names.items()}
    if isinstance(names, (list, tuple)):
        return one(names[0]) if len(names) == 1 else tuple(one(n) for n in names)
    return one(names)


def weight_names(names) -> list[str]:
    """Every array or column that ``data.sample_weight`` names."""
    if names is None:
        return []
    if isinstance(names, dict):
        return [str(v) for v in names.values()]
    return [names] if isinstance(names, str) else list(names)


def load_npz(path: Path, x_names, y_names, url: str, sw_names=None) -> Arrays:
    with np.load(path, allow_pickle=False) as data:

        def pick(names):
            names = [names] if isinstance(names, str) else list(names)
            missing = [n for n in names if n not in data.files]
            if missing:
                raise InvalidSpec(
                    f"{url} has no array named {missing[0]!r} (it has {', '.join(data.files)})"
                )
            arrays = tuple(data[n] for n in names)
            return arrays[0] if len(arrays) == 1 else arrays

        return Arrays(pick(x_names), pick(y_names), weights(sw_names, pick, url))


def load_csv(path: Path, x_names, y_names, url: str, sw_names=None) -> Arrays:
    """Label column(s), float32 features and any sample weight columns; every cell must be a
    number (pyarrow reads it).

    ``x`` left at ``"x"`` with no such column means "every column but the labels and the
    sample weights".
    """
    from service.admission.datahead import Unreadable
    from service.admission.tablehead import csv_table

    try:
        with open(path, "rb") as f:
            table = csv_table(f)
    except Unreadable as exc:
        raise InvalidSpec(f"{url}: {exc}") from exc
    header = table.column_names
    labels = [y_names] if isinstance(y_names, str) else list(y_names)
    for label in labels:
        if label not in header:
            raise InvalidSpec(f"{url} has no label column {label!r} (columns: {', '.join(header)})")
    skip = {*labels, *weight_names(sw_names)}
    if x_names in (None, "x") or (isinstance(x_names, str) and x_names not in header):
        features = [c for c in header if c not in skip]
    else:
        features = [x_names] if isinstance(x_names, str) else list(x_names)
    missing = [c for c in features if c not in header]
    if missing:
        raise InvalidSpec(f"{url} has no column {missing[0]!r} (columns: {', '.join(header)})")

    def column(name):
        if name not in header:
            raise InvalidSpec(
                f"{url} has no sample weight column {name!r} (columns: {', '.join(header)})",
                details={"field": "data.sample_weight"},
            )
        return table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)

    x = np.stack([column(c) for c in features], axis=1).astype(np.float32)
    ys = []
    for label in labels:
        y = column(label)
        ys.append(y.astype(np.int64) if np.all(y == np.round(y)) else y)
    return Arrays(x, ys[0] if len(ys) == 1 else tuple(ys), weights(sw_names, column, url))


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
    """A ``tf.data.Dataset`` yielding global batches ``start`` .. ``stop - 1`` as (x, y)
    or, with sample weights (ordered by :meth:`Arrays.for_outputs`), as (x, y, sw).

    Python assembles blocks of up to ``block`` equal-sized batches at once, and tf.data
    splits them: the per-batch cost stays in C++ (a generator per batch cost ~20%).
    """
    import tensorflow as tf

    def spec(a):
        return tf.TensorSpec((None, None, *a.shape[1:]), tf.as_dtype(a.dtype))

    signature = tuple(_map(a, spec) for a in arrays.batch())

    def gen():
        for idx in _blocks(plan, start, stop, block):
            yield arrays.take(idx).batch()

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
            yield order[b * bs : (b + k) * bs].reshape(k, bs)
            g += k
        if g < last:  # the epoch's short final batch
            b = g - epoch * spe
            yield order[b * bs :].reshape(1, -1)
            g += 1


def scratch_dir(home: str) -> Path:
    path = Path(home) / "cache"
    path.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=path))
