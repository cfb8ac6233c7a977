"""One list of model classes, callbacks and data formats, and every user reads that one."""

from __future__ import annotations

import pytest

from fitfleet import remote
from service.admission import allowed, modelspec, shapes
from service.admission.spec import normalize
from service.core.config import Settings
from service.core.errors import InvalidSpec
from tests.specs import mlp_spec

SETTINGS = Settings.from_env({}, max_epochs=1000, max_attempts=4)


def test_the_clients_copy_of_the_callbacks_equals_the_servers():
    assert remote.CALLBACKS == allowed.CALLBACKS, (
        "fitfleet/remote.py CALLBACKS drifted from service/admission/allowed.py; copy it over"
    )


def test_every_suffix_names_an_allowed_format_and_every_format_has_one():
    assert set(allowed.SUFFIXES.values()) == set(allowed.DATA_FORMATS)
    assert all(s.startswith(".") and s == s.lower() for s in allowed.SUFFIXES)


def test_the_submit_time_readers_cover_exactly_the_allowed_formats():
    assert set(shapes.READERS) == set(allowed.DATA_FORMATS)


def test_the_workers_read_the_same_formats_and_suffixes():
    formats = pytest.importorskip("workers.training.data.formats")
    assert formats.FORMATS == allowed.DATA_FORMATS and formats.SUFFIXES is allowed.SUFFIXES
    assert formats.format_of("s3://b/k/train.PQ", None) == "parquet"
    with pytest.raises(InvalidSpec, match="set data.format to one of npz, csv, parquet, tfrecord"):
        formats.format_of("s3://b/k/train.h5", None)


@pytest.mark.parametrize(
    ("url", "fmt", "want"),
    [
        ("file:///d/train.npz", None, "npz"),
        ("s3://bucket/x/shard-0.TFRECORDS", None, "tfrecord"),
        ("s3://bucket/x/data.pq?versionId=1", None, "parquet"),
        ("s3://bucket/x/data.bin", "csv", "csv"),
        ("s3://bucket/x/data.h5", None, None),
    ],
)
def test_format_of_prefers_the_spec_then_the_suffix(url, fmt, want):
    assert allowed.format_of(url, fmt) == want


def minimal(**extra) -> dict:
    return mlp_spec("s3://b/d.npz", **extra)


def test_the_spec_accepts_each_name_and_refuses_others_listing_them():
    pytest.importorskip("keras")  # the tiny model's JSON comes from Keras
    cbs = [{"class_name": n} for n in allowed.CALLBACKS]
    assert [
        c["class_name"]
        for c in normalize(minimal(fit={"callbacks": cbs}), SETTINGS)["fit"]["callbacks"]
    ] == list(allowed.CALLBACKS)
    for fmt in allowed.DATA_FORMATS:
        assert (
            normalize(minimal(data={"train": "s3://b/d", "format": fmt}), SETTINGS)["data"][
                "format"
            ]
            == fmt
        )
    with pytest.raises(InvalidSpec) as exc:
        normalize(minimal(fit={"callbacks": [{"class_name": "ModelCheckpoint"}]}), SETTINGS)
    assert ", ".join(allowed.CALLBACKS) in exc.value.message
    with pytest.raises(InvalidSpec) as exc:
        normalize(minimal(data={"train": "s3://b/d.h5", "format": "hdf5"}), SETTINGS)
    assert exc.value.message == (
        'data.format must be null, "npz", "csv", "parquet" or "tfrecord", got "hdf5"'
    )
    spec = minimal()
    spec["model"]["class_name"] = "Lambda"
    with pytest.raises(InvalidSpec) as exc:
        normalize(spec, SETTINGS)
    assert ", ".join(allowed.MODEL_CLASSES) in exc.value.message


def test_the_model_builder_makes_every_allowed_callback_and_no_other():
    pytest.importorskip("keras")
    made = modelspec.make_callbacks([{"class_name": n, "config": {}} for n in allowed.CALLBACKS])
    assert [type(cb).__name__ for cb in made] == list(allowed.CALLBACKS)
    with pytest.raises(InvalidSpec, match="fit.callbacks\\[0\\].class_name must be one of"):
        modelspec.make_callbacks([{"class_name": "CSVLogger", "config": {}}])
