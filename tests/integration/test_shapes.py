"""Submit-time shape checks: .npz headers and CSV columns against the model, in Keras's terms."""

from __future__ import annotations

import io
import uuid

import numpy as np
import pytest

from service.admission import datahead, shapes
from service.core.config import Settings
from service.core.errors import InvalidSpec


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings.from_env({}, home=str(tmp_path))


def spec(url: str, loss: str = "sparse_categorical_crossentropy", **data) -> dict:
    return {
        "data": {"train": url, "validation": None, "x": "x", "y": "y", "format": None, **data},
        "compile": {"loss": loss},
    }


def summary(inputs, outputs) -> dict:
    return {"input_shapes": inputs, "output_shapes": outputs, "total_params": 1}


def npz(path, **arrays) -> str:
    np.savez(path, **arrays)
    return path.as_uri()


def refused(s, summ, settings) -> str:
    with pytest.raises(InvalidSpec) as info:
        shapes.check(s, summ, settings)
    assert info.value.status == 422
    return info.value.message


def test_the_example_message(tmp_path, settings):
    url = npz(tmp_path / "d.npz", x=np.zeros((30, 28, 28, 1), "float32"), y=np.zeros(30))
    message = refused(spec(url), summary([[None, 50, 50, 3]], [[None, 3]]), settings)
    assert message == (
        "data.train: model expects input (None, 50, 50, 3) but data x has shape (30, 28, 28, 1)"
    )


def test_matching_data_passes_with_kerass_one_axis_leeway(tmp_path, settings):
    url = npz(tmp_path / "d.npz", x=np.zeros((8, 5), "float32"), y=np.arange(8) % 3)
    shapes.check(spec(url), summary([[None, 5]], [[None, 3]]), settings)
    shapes.check(spec(url), summary([[None, 5, 1]], [[None, 3]]), settings)  # Keras adds it
    shapes.check(spec(url), summary([[None, None]], [[None, 3]]), settings)


def test_labels_against_output_units(tmp_path, settings):
    url = npz(tmp_path / "d.npz", x=np.zeros((10, 2)), y=np.arange(10))
    message = refused(spec(url), summary([[None, 2]], [[None, 3]]), settings)
    assert (
        "model output (None, 3) has 3 units but labels y range from 0 to 9 (10 classes)" in message
        and "sparse_categorical_crossentropy" in message
    )
    negative = npz(tmp_path / "n.npz", x=np.zeros((4, 2)), y=np.array([0, 1, -1, 2]))
    assert "range from -1" in refused(spec(negative), summary([[None, 2]], [[None, 3]]), settings)
    onehot = npz(tmp_path / "o.npz", x=np.zeros((4, 2)), y=np.eye(4))
    message = refused(
        spec(onehot, "categorical_crossentropy"), summary([[None, 2]], [[None, 3]]), settings
    )
    assert "has 3 units but labels y have shape (4, 4) (4 classes) for categorical" in message
    assert "expects integer class labels" in refused(
        spec(onehot), summary([[None, 2]], [[None, 4]]), settings
    )
    shapes.check(
        spec(onehot, "categorical_crossentropy"), summary([[None, 2]], [[None, 4]]), settings
    )
    shapes.check(spec(url, "mse"), summary([[None, 2]], [[None, 1]]), settings)  # not checked


def test_several_inputs_and_sample_counts(tmp_path, settings):
    url = npz(
        tmp_path / "d.npz", a=np.zeros((6, 3)), b=np.zeros((6, 2)), y=np.zeros(6), short=np.zeros(5)
    )
    shapes.check(
        spec(url, "mse", x=["a", "b"]), summary([[None, 3], [None, 2]], [[None, 1]]), settings
    )
    assert "model has 2 inputs but data.x names 1 array" in refused(
        spec(url, "mse", x="a"), summary([[None, 3], [None, 2]], [[None, 1]]), settings
    )
    assert "differ in their number of samples: a has 6, short has 5" in refused(
        spec(url, "mse", x="a", y="short"), summary([[None, 3]], [[None, 1]]), settings
    )
    assert "has no array named 'z' (it has a, b, short, y)" in refused(
        spec(url, "mse", x="z"), summary([[None, 3]], [[None, 1]]), settings
    )


def test_csv_feature_columns_and_labels(tmp_path, settings):
    path = tmp_path / "d.csv"
    path.write_text("f1,f2,f3,label\n" + "".join(f"0,1,2,{i % 4}\n" for i in range(12)))
    s = spec(path.as_uri(), y="label")
    shapes.check(s, summary([[None, 3]], [[None, 4]]), settings)
    assert (
        "model expects input (None, 5) but data x has shape (12, 3) (3 feature columns)"
        in refused(s, summary([[None, 5]], [[None, 4]]), settings)
    )
    assert "labels label range from 0 to 3 (4 classes)" in refused(
        s, summary([[None, 3]], [[None, 2]]), settings
    )
    assert "no label column 'y'" in refused(
        spec(path.as_uri()), summary([[None, 3]], [[None, 4]]), settings
    )


def test_what_does_not_exist_is_data_not_found(tmp_path, settings):
    url = (tmp_path / "absent.npz").as_uri()
    with pytest.raises(InvalidSpec) as info:
        shapes.check(spec(url), summary([[None, 9]], [[None, 1]]), settings)
    assert info.value.code == "data_not_found" and info.value.status == 422
    assert info.value.details == {"field": "data.train", "url": url}
    assert info.value.message == f"data.train: data file {url} does not exist"


def test_a_folder_without_a_trailing_slash_says_how_to_name_a_prefix(tmp_path, settings):
    message = refused(spec(tmp_path.as_uri()), summary([[None, 9]], [[None, 1]]), settings)
    assert "it is a folder; end the URL with /" in message


def test_what_cannot_be_seen_is_skipped(tmp_path, settings, monkeypatch):
    def unreachable(url):
        raise datahead.Uninspectable("cannot reach")

    with monkeypatch.context() as m:
        m.setattr(datahead, "open_source", unreachable)
        shapes.check(spec("s3://b/d.npz"), summary([[None, 9]], [[None, 1]]), settings)
    url = npz(tmp_path / "d.npz", x=np.zeros((3, 2)), y=np.zeros(3))
    shapes.check(spec(url), summary(None, None), settings)  # a model with unknown shapes


def test_headers_are_read_without_loading_arrays(tmp_path, monkeypatch):
    url = npz(tmp_path / "d.npz", x=np.zeros((2000, 500), "float32"), y=np.zeros(2000, "int8"))

    def no_loading(*args, **kwargs):
        raise AssertionError("an array was loaded")

    monkeypatch.setattr(np.lib.format, "read_array", no_loading)
    arrays = datahead.npz_arrays(datahead.open_source(url))
    assert arrays["x"].shape == (2000, 500) and arrays["x"].nbytes == 4_000_000
    assert arrays["y"].dtype == np.int8


def test_compressed_npz_headers(tmp_path):
    path = tmp_path / "c.npz"
    np.savez_compressed(path, x=np.ones((100, 7)), y=np.arange(100))
    arrays = datahead.npz_arrays(datahead.open_source(path.as_uri()))
    assert arrays["x"].shape == (100, 7) and arrays["y"].shape == (100,)


def test_an_s3_object_is_inspected_by_ranged_reads(s3, tmp_path, monkeypatch):
    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    np.savez(buf, x=rng.normal(size=(4000, 500)).astype("float32"), y=np.arange(4000) % 3)
    key = f"shapes/{uuid.uuid4().hex}.npz"
    s3.client().put_object(Bucket=s3.bucket, Key=key, Body=buf.getvalue())
    fetched = []
    real = datahead._RangeFile.readinto

    def counting(self, buffer):
        n = real(self, buffer)
        fetched.append(n)
        return n

    monkeypatch.setattr(datahead._RangeFile, "readinto", counting)
    source = datahead.open_source(f"s3://{s3.bucket}/{key}")
    assert source.size == len(buf.getvalue())
    arrays = datahead.npz_arrays(source)
    assert arrays["x"].shape == (4000, 500) and arrays["y"].shape == (4000,)
    assert sum(fetched) < source.size / 4  # the 8 MB of x never travelled
    s = Settings.from_env({}, home=str(tmp_path))
    message = refused(spec(f"s3://{s3.bucket}/{key}"), summary([[None, 50]], [[None, 3]]), s)
    assert "model expects input (None, 50) but data x has shape (4000, 500)" in message


def test_an_api_without_tensorflow_skips_the_tfrecord_check(monkeypatch):
    import io
    import struct
    import sys

    from service.admission import datahead, tablehead

    monkeypatch.setitem(sys.modules, "tensorflow.core.example", None)
    record = struct.pack("<Q", 3) + b"\0" * 4 + b"abc"
    with pytest.raises(datahead.Uninspectable, match="needs TensorFlow"):
        tablehead.tfrecord_features(io.BytesIO(record))
