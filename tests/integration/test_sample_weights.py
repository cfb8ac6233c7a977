"""Sample weights in process: the same training as ``model.fit(sample_weight=...)``, exact
resume with them, and the spec's ``data.sample_weight`` forms; on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from service.admission import sampleweights
from service.admission.spec import normalize
from service.core.errors import InvalidSpec
from service.store.jobs import JobStore
from service.store.metrics import MetricStore
from tests.specs import blobs, mlp_spec
from tests.unit.test_resume import final_weights, run_job


@pytest.fixture
def weighted(tmp_path, db_url):
    """Settings on ``db_url`` and an .npz file holding x, y and per-sample weights w."""
    from tests.conftest import embedded_settings

    x, y = blobs()
    w = np.random.default_rng(3).uniform(0.1, 3.0, size=len(y)).astype("float32")
    np.savez(tmp_path / "train.npz", x=x, y=y, w=w)
    settings = embedded_settings(tmp_path, database_url=db_url)
    return settings, (tmp_path / "train.npz").as_uri(), (x, y, w)


def weighted_spec(url: str, **fit) -> dict:
    spec = mlp_spec(url, checkpoint={"every_n_batches": 2})
    spec["data"]["sample_weight"] = "w"
    spec["fit"].update(fit)
    return spec


def plain_fit(spec: dict, x, y, w):
    """What ``model.fit(sample_weight=w)`` gives for the spec, in this process."""
    from service.admission import modelspec

    keras.utils.set_random_seed(spec["seed"])
    model = modelspec.build_model(spec["model"])
    modelspec.compile_model(model, spec["compile"])
    history = model.fit(
        x,
        y,
        sample_weight=w,
        batch_size=spec["fit"]["batch_size"],
        epochs=spec["fit"]["epochs"],
        shuffle=False,
        verbose=0,
        validation_split=spec["fit"]["validation_split"],
    )
    return [v.numpy() for v in model.weights], history.history


def test_weighted_job_trains_as_model_fit_with_sample_weight(weighted):
    """Plain Keras: ``model.fit(x, y, sample_weight=w, validation_split=0.2)`` weights each
    sample's loss by w and splits w with the data, so val_loss is weighted too. fitfleet
    given ``data.sample_weight: "w"`` ends with bit-identical weights and the same logs."""
    settings, url, (x, y, w) = weighted
    spec = weighted_spec(url, shuffle=False)
    job, outcomes = run_job(settings, spec)
    assert outcomes == ["succeeded"], job["error"]
    want, history = plain_fit(spec, x, y, w)
    got = final_weights(settings, job["id"])
    assert len(got) == len(want)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    rows = MetricStore(settings.database_url).read(job["id"], "epoch")["rows"]
    for key in ("loss", "val_loss"):
        assert [r["logs"][key] for r in rows] == pytest.approx(history[key], rel=1e-6)
    unweighted, _ = plain_fit(spec, x, y, None)
    assert any(not np.array_equal(a, b) for a, b in zip(got, unweighted))  # w mattered


def test_weighted_job_resumes_bit_identical(weighted):
    """A preempted weighted job resumes to the weights and logs of an uninterrupted one."""
    settings, url, _ = weighted
    spec = weighted_spec(url)
    ref, ref_outcomes = run_job(settings, spec)
    got, outcomes = run_job(settings, spec, preempt_at=4)
    assert ref_outcomes == ["succeeded"] and outcomes == ["preempted", "succeeded"]
    assert JobStore(settings.database_url).attempts(got["id"])[1]["resumed_from_step"] == 4
    for a, b in zip(final_weights(settings, ref["id"]), final_weights(settings, got["id"])):
        np.testing.assert_array_equal(a, b)
    metrics = MetricStore(settings.database_url)
    for kind in ("batch", "epoch"):
        ref_rows = metrics.read(ref["id"], kind)["rows"]
        got_rows = metrics.read(got["id"], kind)["rows"]
        assert [(r["step"], r["logs"]) for r in got_rows] == [
            (r["step"], r["logs"]) for r in ref_rows
        ]


def two_outputs_json() -> dict:
    inp = keras.Input((6,), name="inp")
    hidden = keras.layers.Dense(8, activation="relu")(inp)
    model = keras.Model(
        inp, [keras.layers.Dense(3, name="cls")(hidden), keras.layers.Dense(1, name="reg")(hidden)]
    )
    return json.loads(model.to_json())


def test_weights_by_output_name_train_as_a_list_in_output_order(tmp_path, db_url):
    """Plain Keras weights each output's loss by its own array with
    ``sample_weight=[w_cls, w_reg]``; fitfleet's ``{"reg": ..., "cls": ...}`` by output
    name (in any order) trains to the same weights."""
    from tests.conftest import embedded_settings

    x, y = blobs()
    reg = x[:, :1] * 2.0
    rng = np.random.default_rng(5)
    w_cls, w_reg = rng.uniform(0.1, 2, len(y)), rng.uniform(0.1, 2, len(y))
    np.savez(tmp_path / "two.npz", x=x, y_cls=y, y_reg=reg, wc=w_cls, wr=w_reg)
    settings = embedded_settings(tmp_path, database_url=db_url)
    spec = {
        "model": two_outputs_json(),
        "seed": 3,
        "compile": {
            "optimizer": "adam",
            "loss": {"cls": "sparse_categorical_crossentropy", "reg": "mse"},
        },
        "data": {
            "train": (tmp_path / "two.npz").as_uri(),
            "y": ["y_cls", "y_reg"],
            "sample_weight": {"reg": "wr", "cls": "wc"},
        },
        "fit": {"epochs": 2, "batch_size": 16, "shuffle": False},
    }
    job, outcomes = run_job(settings, spec)
    assert outcomes == ["succeeded"], job["error"]
    from service.admission import modelspec

    keras.utils.set_random_seed(3)
    model = modelspec.build_model(spec["model"])
    modelspec.compile_model(model, normalize(spec)["compile"])
    model.fit(
        x,
        [y, reg],
        sample_weight=[w_cls.astype("float32"), w_reg.astype("float32")],
        batch_size=16,
        epochs=2,
        shuffle=False,
        verbose=0,
    )
    for a, b in zip(final_weights(settings, job["id"]), model.weights):
        np.testing.assert_array_equal(a, b.numpy())


@pytest.mark.parametrize("value", ["w", ["w1", "w2"], {"cls": "a", "reg": "b"}])
def test_spec_takes_a_name_a_list_or_a_dict_by_output(value):
    spec = normalize(
        {
            "model": two_outputs_json(),
            "compile": {"loss": "mse"},
            "data": {"train": "s3://b/d.npz", "sample_weight": value},
        }
    )
    assert spec["data"]["sample_weight"] == value
    assert (
        "sample_weight"
        not in normalize(
            {
                "model": two_outputs_json(),
                "compile": {"loss": "mse"},
                "data": {"train": "s3://b/d.npz"},
            }
        )["data"]
    )


@pytest.mark.parametrize(
    "value,words",
    [
        (3, "data.sample_weight must be an array or column name"),
        ({"cls": 1}, "data.sample_weight must be"),
        ([], "data.sample_weight must be"),
    ],
)
def test_spec_refuses_other_forms(value, words):
    with pytest.raises(InvalidSpec) as info:
        normalize(
            {
                "model": two_outputs_json(),
                "compile": {"loss": "mse"},
                "data": {"train": "s3://b/d.npz", "sample_weight": value},
            }
        )
    assert words in info.value.message and info.value.details["field"] == "data.sample_weight"


def test_sample_weight_with_class_weight_is_refused_as_keras_does():
    """Plain Keras: "You cannot `class_weight` and `sample_weight` at the same time."."""
    with pytest.raises(InvalidSpec) as info:
        normalize(
            {
                "model": two_outputs_json(),
                "compile": {"loss": "mse"},
                "data": {"train": "s3://b/d.npz", "sample_weight": "w"},
                "fit": {"class_weight": {"0": 1.0}},
            }
        )
    assert "fit.class_weight" in info.value.message


def submit_check(tmp_path, sample_weight, **arrays):
    np.savez(tmp_path / "d.npz", **arrays)
    spec = normalize(
        {
            "model": two_outputs_json(),
            "compile": {"loss": "mse"},
            "data": {
                "train": (tmp_path / "d.npz").as_uri(),
                "y": ["a", "b"],
                "sample_weight": sample_weight,
            },
        }
    )
    with pytest.raises(InvalidSpec) as info:
        sampleweights.check(spec, {"output_shapes": [[None, 3], [None, 1]]})
    assert info.value.status == 422 and info.value.details["field"] == "data.sample_weight"
    return info.value.message


def test_submit_refuses_a_missing_array_a_wrong_length_and_unknown_outputs(tmp_path):
    x, a, b = np.zeros((10, 6)), np.zeros(10), np.zeros((10, 1))
    assert "no array named 'w'" in submit_check(tmp_path, "w", x=x, a=a, b=b)
    message = submit_check(tmp_path, "w", x=x, a=a, b=b, w=np.ones(9))
    assert "has 9 weights but the data has 10 samples" in message
    assert "'cls', 'rg'" not in (
        m := submit_check(tmp_path, {"cls": "a", "rg": "b"}, x=x, a=a, b=b)
    )
    assert "outputs cls, rg" in m and "cls, reg" in m
    assert "lists 3 weight arrays but the model has 2 outputs" in submit_check(
        tmp_path, ["a", "a", "a"], x=x, a=a, b=b
    )


def test_shards_and_an_unweighted_validation_file_train_as_model_fit(tmp_path, db_url):
    """Plain Keras: ``model.fit(x, y, sample_weight=w, validation_data=(xv, yv))`` weights
    the training loss only. fitfleet reading a prefix of two weighted shards, with a
    validation file that holds no weights, trains to the same weights and val_loss."""
    from tests.conftest import embedded_settings

    x, y = blobs(n=100)
    w = np.random.default_rng(8).uniform(0.1, 3.0, 80).astype("float32")
    (tmp_path / "shards").mkdir()
    np.savez(tmp_path / "shards" / "part-0.npz", x=x[:48], y=y[:48], w=w[:48])
    np.savez(tmp_path / "shards" / "part-1.npz", x=x[48:80], y=y[48:80], w=w[48:])
    np.savez(tmp_path / "val.npz", x=x[80:], y=y[80:])
    settings = embedded_settings(tmp_path, database_url=db_url)
    spec = mlp_spec((tmp_path / "shards").as_uri() + "/", checkpoint={"every_n_batches": 2})
    spec["data"].update(validation=(tmp_path / "val.npz").as_uri(), sample_weight="w")
    spec["fit"].update(validation_split=0.0, shuffle=False)
    job, outcomes = run_job(settings, spec)
    assert outcomes == ["succeeded"], job["error"]
    from service.admission import modelspec

    keras.utils.set_random_seed(spec["seed"])
    model = modelspec.build_model(spec["model"])
    modelspec.compile_model(model, spec["compile"])
    history = model.fit(
        x[:80],
        y[:80],
        sample_weight=w,
        batch_size=16,
        epochs=3,
        validation_data=(x[80:], y[80:]),
        shuffle=False,
        verbose=0,
    )
    for a, b in zip(final_weights(settings, job["id"]), model.weights):
        np.testing.assert_array_equal(a, b.numpy())
    rows = MetricStore(settings.database_url).read(job["id"], "epoch")["rows"]
    assert [r["logs"]["val_loss"] for r in rows] == pytest.approx(
        history.history["val_loss"], rel=1e-6
    )


def test_csv_and_parquet_weight_columns_are_weights_not_features(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from service.admission import shapes
    from service.core.config import Settings
    from workers.training.data import formats

    x, y = blobs(n=10, features=3)
    w = np.arange(1, 11, dtype="float64")
    header = "a,b,c,label,weight\n"
    rows = "".join(f"{r[0]},{r[1]},{r[2]},{lab},{wt}\n" for r, lab, wt in zip(x, y, w))
    (tmp_path / "d.csv").write_text(header + rows)
    pq.write_table(
        pa.table({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "label": y, "weight": w}),
        tmp_path / "d.parquet",
    )
    for name, fmt in (("d.csv", "csv"), ("d.parquet", "parquet")):
        arrays = formats.read(tmp_path / name, fmt, "x", "label", name, "weight")
        assert arrays.x.shape == (10, 3)
        np.testing.assert_array_equal(arrays.sw, w.astype("float32"))
        assert arrays.sw.dtype == np.float32
    spec = {
        "data": {
            "train": (tmp_path / "d.csv").as_uri(),
            "validation": None,
            "x": "x",
            "y": "label",
            "format": None,
            "sample_weight": "weight",
        },
        "compile": {"loss": "mse"},
    }
    shapes.check(
        spec,
        {"input_shapes": [[None, 3]], "output_shapes": [[None, 1]]},
        Settings.from_env({}, home=str(tmp_path)),
    )  # 3 features, not 4
    spec["data"]["sample_weight"] = "wt"
    spec["model"] = {"class_name": "Sequential", "config": {"layers": []}}
    with pytest.raises(InvalidSpec, match="the CSV file has no column 'wt'"):
        sampleweights.check(spec, None)


def test_tfrecord_weight_feature_is_read_as_weights(tmp_path):
    import tensorflow as tf

    from workers.training.data import formats

    x, y = blobs(n=6, features=3)
    w = np.linspace(0.5, 3.0, 6)
    with tf.io.TFRecordWriter(str(tmp_path / "t.tfrecord")) as out:
        for xi, yi, wi in zip(x, y, w):
            feature = {
                "x": tf.train.Feature(float_list=tf.train.FloatList(value=xi)),
                "y": tf.train.Feature(int64_list=tf.train.Int64List(value=[yi])),
                "w": tf.train.Feature(float_list=tf.train.FloatList(value=[wi])),
            }
            out.write(
                tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
            )
    arrays = formats.read(tmp_path / "t.tfrecord", "tfrecord", "x", "y", "t", ["w"])
    assert arrays.x.shape == (6, 3) and arrays.sw.shape == (6,)
    np.testing.assert_allclose(arrays.sw, w, rtol=1e-6)
    with pytest.raises(InvalidSpec, match="no feature 'v'"):
        formats.read(tmp_path / "t.tfrecord", "tfrecord", "x", "y", "t", "v")
