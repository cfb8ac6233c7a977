"""Data formats: Parquet, TFRecord and streamed shards train to the same weights as ``.npz``.

Each job runs in process (``workers.training.attempt.Attempt``) on SQLite and a local store,
as in test_resume.py; the S3 download cache is checked against moto's server.
"""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pa = pytest.importorskip("pyarrow")

import pyarrow.parquet as pq

from service.storage import open_store
from service.store.jobs import JobStore
from service.store.metrics import MetricStore
from tests.specs import blobs, mlp_spec
from tests.unit.test_resume import run_job
from workers.training.data import cache, formats, memory
from workers.training.data.shards import ShardSet


def write_parquet(path, x, y):
    xs = pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), x.shape[1])
    pq.write_table(pa.table({"x": xs, "y": pa.array(y)}), path)


def write_tfrecord(path, x, y):
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(path)) as w:
        for xi, yi in zip(x, y):
            feature = {
                "x": tf.train.Feature(float_list=tf.train.FloatList(value=xi)),
                "y": tf.train.Feature(int64_list=tf.train.Int64List(value=[yi])),
            }
            w.write(
                tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
            )


@pytest.fixture
def env(tmp_path):
    from tests.conftest import embedded_settings

    x, y = blobs()
    np.savez(tmp_path / "train.npz", x=x, y=y)
    settings = embedded_settings(tmp_path)
    return settings, tmp_path, x, y


def final_weights(settings, job_id):
    """The weights of the job's stored final model, wherever the store keeps it."""
    store = open_store(settings.storage_url)
    key = next(k for k in store.list("") if k.endswith(f"{job_id}/model.keras"))
    return [w.numpy() for w in keras.models.load_model(store.base / key).weights]


def trained(settings, spec, preempt_at=None):
    job, outcomes = run_job(settings, spec, preempt_at=preempt_at)
    assert job["state"] == "succeeded", job["error"]
    return final_weights(settings, job["id"]), outcomes, job


def assert_same(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)


def test_parquet_and_tfrecord_train_like_npz(env):
    settings, folder, x, y = env
    write_parquet(folder / "train.parquet", x, y)
    write_tfrecord(folder / "train.tfrecord", x, y)
    ref, _, _ = trained(settings, mlp_spec((folder / "train.npz").as_uri()))
    for name in ("train.parquet", "train.tfrecord"):
        got, _, _ = trained(settings, mlp_spec((folder / name).as_uri()))
        assert_same(ref, got)


def test_readers_give_the_npz_arrays(env):
    _, folder, x, y = env
    write_parquet(folder / "t.parquet", x, y)
    write_tfrecord(folder / "t.tfrecord", x, y)
    for name, fmt in (("t.parquet", "parquet"), ("t.tfrecord", "tfrecord")):
        got = formats.read(folder / name, fmt, "x", "y", name)
        assert got.x.dtype == np.float32 and got.y.dtype == np.int64
        np.testing.assert_array_equal(got.x, x)
        np.testing.assert_array_equal(got.y, y)
        assert formats.count_rows(folder / name, fmt, "y", name) == len(x)
    assert formats.count_rows(folder / "train.npz", "npz", "y", "n") == len(x)


def make_shards(folder, x, y):
    """Five shards of uneven sizes in three formats, in name order = sample order."""
    shards = folder / "shards"
    shards.mkdir()
    cuts = [0, 17, 40, 41, 77, 96]
    writers = [
        ("npz", lambda p, a, b: np.savez(p, x=a, y=b)),
        ("parquet", write_parquet),
        ("tfrecord", write_tfrecord),
    ]
    for i in range(len(cuts) - 1):
        fmt, write = writers[i % 3]
        write(shards / f"part-{i:03d}.{fmt}", x[cuts[i] : cuts[i + 1]], y[cuts[i] : cuts[i + 1]])
    (shards / "_SUCCESS").write_text("")
    np.savez(folder / "val.npz", x=x[96:], y=y[96:])
    np.savez(folder / "head.npz", x=x[:96], y=y[:96])
    return shards.as_uri() + "/"


def shard_spec(train, val, shuffle, **kw):
    spec = mlp_spec(train, **kw)
    spec["data"]["validation"] = val
    spec["fit"].update(validation_split=0.0, shuffle=shuffle)
    return spec


def test_shards_stream_the_same_batches_as_npz(env):
    settings, folder, x, y = env
    prefix = make_shards(folder, x, y)
    val = (folder / "val.npz").as_uri()
    ref, _, _ = trained(settings, shard_spec((folder / "head.npz").as_uri(), val, False))
    got, _, _ = trained(settings, shard_spec(prefix, val, False))
    assert_same(ref, got)
    # A validation prefix is streamed in order, and evaluates like the same arrays.
    got_val, _, got_job = trained(settings, shard_spec(prefix, prefix, False))
    ref_val, _, ref_job = trained(
        settings, shard_spec((folder / "head.npz").as_uri(), (folder / "head.npz").as_uri(), False)
    )
    assert_same(ref_val, got_val)
    metrics = MetricStore(settings.database_url)
    rows = [metrics.read(j["id"], "epoch")["rows"] for j in (ref_job, got_job)]
    assert [r["logs"] for r in rows[0]] == [r["logs"] for r in rows[1]]
    assert len(rows[0]) == 3 and "val_loss" in rows[0][0]["logs"]


def test_shard_order_is_a_pure_function_of_seed_and_epoch(env):
    _, folder, x, y = env
    shards = ShardSet.open(make_shards(folder, x, y), "x", "y", None, folder / "cache")
    assert len(shards) == 96 and [s.fmt for s in shards.shards][:3] == [
        "npz",
        "parquet",
        "tfrecord",
    ]
    plan = memory.BatchPlan(len(shards), 16, 7, True)
    spe = plan.steps_per_epoch
    whole = [b for b in shards.batches(plan, 0, 3 * spe)]
    for epoch in range(3):  # every sample once per epoch, in an order of its own
        seen = np.concatenate([b.x[:, 0] for b in whole[epoch * spe : (epoch + 1) * spe]])
        np.testing.assert_array_equal(np.sort(seen), np.sort(x[:96, 0]))
    assert not np.array_equal(whole[0].x, whole[spe].x)
    for start in (1, spe - 1, spe + 3):  # a resume recomputes, and sees the same batches
        again = ShardSet.open(shards_url(folder), "x", "y", None, folder / "cache")
        tail = list(again.batches(plan, start, 3 * spe))
        assert len(tail) == len(whole) - start
        for a, b in zip(tail, whole[start:]):
            np.testing.assert_array_equal(a.x, b.x)
            np.testing.assert_array_equal(a.y, b.y)


def shards_url(folder):
    return (folder / "shards").as_uri() + "/"


@pytest.mark.parametrize("k", [4, 8], ids=["mid-epoch", "epoch-end"])
def test_streamed_shards_resume_bit_identical(env, k):
    settings, folder, x, y = env
    spec = shard_spec(
        make_shards(folder, x, y),
        (folder / "val.npz").as_uri(),
        True,
        batch_size=12,
        checkpoint={"every_n_batches": 2},
    )
    ref, _, _ = trained(settings, spec)
    got, outcomes, job = trained(settings, spec, preempt_at=k)
    assert outcomes == ["preempted", "succeeded"]
    assert JobStore(settings.database_url).attempts(job["id"])[1]["resumed_from_step"] == k
    assert_same(ref, got)


def test_validation_split_of_a_prefix_is_refused(env):
    _, folder, x, y = env
    shards = ShardSet.open(make_shards(folder, x, y), "x", "y", None, folder / "cache")
    with pytest.raises(Exception, match="data.validation instead"):
        formats.split_validation(shards, 0.2)


def test_s3_objects_are_cached_by_etag(s3, tmp_path, monkeypatch):
    from service.storage import S3Store

    calls = []
    real = S3Store.get_file
    monkeypatch.setattr(S3Store, "get_file", lambda self, k, p: (calls.append(k), real(self, k, p)))
    key = "cache-test/part-0.npz"
    x, y = blobs(n=10)
    np.savez(tmp_path / "a.npz", x=x, y=y)
    s3.client().upload_file(str(tmp_path / "a.npz"), s3.bucket, key)
    url = f"s3://{s3.bucket}/{key}"
    first = cache.fetch(url, tmp_path / "cache")
    second = cache.fetch(url, tmp_path / "cache")
    assert first == second and calls == [key]
    np.savez(tmp_path / "a.npz", x=x[:5], y=y[:5])  # a new version: a new ETag
    s3.client().upload_file(str(tmp_path / "a.npz"), s3.bucket, key)
    third = cache.fetch(url, tmp_path / "cache")
    assert third != first and calls == [key, key]
    assert len(formats.load(url, "x", "y", None, tmp_path / "cache")) == 5
    shards = ShardSet.open(f"s3://{s3.bucket}/cache-test/", "x", "y", None, tmp_path / "cache")
    assert len(shards) == 5 and calls == [key, key]  # the listing's ETag hits the cache


def test_a_missing_s3_object_is_named_and_nothing_is_cached(s3, tmp_path):
    from service.core.errors import NotFound

    url = f"s3://{s3.bucket}/cache-test/missing.npz"
    with pytest.raises(NotFound, match=f"data object {url} does not exist"):
        cache.fetch(url, tmp_path / "cache")
    assert not list((tmp_path / "cache").glob("*"))


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
def test_npz_rows_are_read_from_the_header_the_submit_checks_read(tmp_path, version):
    import zipfile

    from service.admission import datahead

    path = tmp_path / "v.npz"
    with zipfile.ZipFile(path, "w") as z:
        for name, a in (("x", np.zeros((7, 3), np.float32)), ("y", np.arange(7))):
            with z.open(f"{name}.npy", "w") as f:
                np.lib.format.write_array(f, a, version=version)
    assert formats.count_rows(path, "npz", "y", "v") == 7
    heads = datahead.npz_arrays(datahead.open_source(path.as_uri()))
    assert heads["x"].shape == (7, 3) and heads["y"].shape == (7,)
    with pytest.raises(Exception, match="no array named 'label'"):
        formats.count_rows(path, "npz", "label", "v")


def test_cache_is_trimmed_least_recently_used_first(tmp_path):
    import os
    import time

    folder = cache.cache_dir(tmp_path)
    now = time.time()
    for i, name in enumerate(("old.npz", "mid.npz", "new.npz")):
        (folder / name).write_bytes(b"x" * 1000)
        os.utime(folder / name, (now - 100 + i * 10, now - 100 + i * 10))
    (folder / "old.npz.rows.json").write_text('{"rows": 3}')
    assert cache.cache_dir(tmp_path, max_bytes=2500) == folder
    assert sorted(p.name for p in folder.iterdir()) == ["mid.npz", "new.npz"]
    assert cache.trim(folder, 0) == 2 and not list(folder.iterdir())


def test_tfrecord_shape_feature_and_parquet_feature_columns(tmp_path):
    import tensorflow as tf

    images = np.arange(4 * 6, dtype=np.float32).reshape(4, 2, 3)
    with tf.io.TFRecordWriter(str(tmp_path / "img.tfrecord")) as w:
        for i, image in enumerate(images):
            feature = {
                "image": tf.train.Feature(float_list=tf.train.FloatList(value=image.ravel())),
                "image/shape": tf.train.Feature(int64_list=tf.train.Int64List(value=[2, 3])),
                "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[i])),
            }
            w.write(
                tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
            )
    got = formats.read(tmp_path / "img.tfrecord", "tfrecord", "image", "label", "img")
    np.testing.assert_array_equal(got.x, images)
    np.testing.assert_array_equal(got.y, [0, 1, 2, 3])
    with pytest.raises(Exception, match="no feature 'pixels'"):
        formats.read(tmp_path / "img.tfrecord", "tfrecord", "pixels", "label", "img")

    pq.write_table(
        pa.table({"f0": [1.0, 2.0], "f1": [3.0, 4.0], "target": [0, 1]}), tmp_path / "cols.parquet"
    )
    got = formats.read(tmp_path / "cols.parquet", "parquet", "x", "target", "cols")
    np.testing.assert_array_equal(got.x, [[1.0, 3.0], [2.0, 4.0]])
    assert got.x.dtype == np.float32 and list(got.y) == [0, 1]
    with pytest.raises(Exception, match="no column 'label'"):
        formats.read(tmp_path / "cols.parquet", "parquet", "x", "label", "cols")
