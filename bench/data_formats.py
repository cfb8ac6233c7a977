"""Data formats side by side: load time of one file, and batches per second of a stream.

One process, the same 64,000 samples of 32 float32 features and an int64 label in every
format, rounds interleaved (median of each):

- ``load``: ``formats.load`` of one file — ``.npz`` (the reference), Parquet, TFRecord;
- ``iterate``: one shuffled epoch of batches of 32 through the tf.data dataset the
  worker feeds to ``fit`` — arrays in memory (the reference, ``memory.make_dataset``) against
  a prefix of 8 shards streamed one at a time (``.npz`` shards, Parquet shards).

Prints ratios to the reference. Usage: ``python bench/data_formats.py [--rounds 3]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import tensorflow as tf

from workers.training.data import formats, memory

SAMPLES, FEATURES, BATCH, SHARDS = 64_000, 32, 32, 8


def write(folder: Path, x: np.ndarray, y: np.ndarray) -> None:
    np.savez(folder / "all.npz", x=x, y=y)
    table = pa.table(
        {"x": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), FEATURES), "y": pa.array(y)}
    )
    pq.write_table(table, folder / "all.parquet")
    with tf.io.TFRecordWriter(str(folder / "all.tfrecord")) as w:
        for xi, yi in zip(x, y):
            feature = {
                "x": tf.train.Feature(float_list=tf.train.FloatList(value=xi)),
                "y": tf.train.Feature(int64_list=tf.train.Int64List(value=[yi])),
            }
            w.write(
                tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
            )
    for kind in ("npz", "parquet"):
        (folder / kind).mkdir()
        for i, (xs, ys) in enumerate(zip(np.array_split(x, SHARDS), np.array_split(y, SHARDS))):
            path = folder / kind / f"part-{i:03d}.{kind}"
            if kind == "npz":
                np.savez(path, x=xs, y=ys)
            else:
                pq.write_table(
                    pa.table(
                        {
                            "x": pa.FixedSizeListArray.from_arrays(pa.array(xs.ravel()), FEATURES),
                            "y": pa.array(ys),
                        }
                    ),
                    path,
                )


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def epoch(source) -> int:
    plan = memory.BatchPlan(len(source), BATCH, 0, True)
    n = 0
    for _ in formats.dataset(source, plan, 0, plan.steps_per_epoch):
        n += 1
    assert n == plan.steps_per_epoch
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(SAMPLES, FEATURES)).astype("float32")
    y = rng.integers(0, 10, SAMPLES).astype("int64")
    with tempfile.TemporaryDirectory() as tmp:
        folder, cache = Path(tmp), Path(tmp) / "cache"
        write(folder, x, y)
        urls = {k: (folder / f"all.{k}").as_uri() for k in ("npz", "parquet", "tfrecord")}
        streams = {f"{k} shards": (folder / k).as_uri() + "/" for k in ("npz", "parquet")}
        loads = {k: [] for k in urls}
        iters = {k: [] for k in ("arrays", *streams)}
        arrays = formats.load(urls["npz"], "x", "y", None, cache)
        for _ in range(args.rounds):
            for k, url in urls.items():
                loads[k].append(timed(lambda url=url: formats.load(url, "x", "y", None, cache)))
            iters["arrays"].append(timed(lambda: epoch(arrays)))
            for k, url in streams.items():
                shards = formats.load(url, "x", "y", None, cache)
                iters[k].append(timed(lambda shards=shards: epoch(shards)))
    med = {k: statistics.median(v) for k, v in {**loads, **iters}.items()}
    print(f"{SAMPLES} samples x {FEATURES} features, batch {BATCH}, {args.rounds} rounds (median)")
    for k in urls:
        print(f"load {k:<9} {med[k] * 1000:8.1f} ms   x{med[k] / med['npz']:.2f} of .npz")
    steps = SAMPLES // BATCH
    for k in iters:
        rate = steps / med[k]
        print(f"iterate {k:<15} {rate:6.0f} batches/s   x{med['arrays'] / med[k]:.2f} of arrays")


if __name__ == "__main__":
    main()
