"""A snapshot's ``.keras`` file is the file ``model.save`` writes, from one host copy."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

keras = pytest.importorskip("keras")
h5py = pytest.importorskip("h5py")

from service.storage import sha256_file
from workers.training.resume import kerasfile


def trained_model():
    inner = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8), keras.layers.BatchNormalization()],
        name="inner",
    )
    inputs = keras.Input((4,))
    hidden = keras.layers.Dropout(0.2)(inner(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(hidden))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    model.fit(rng.normal(size=(32, 4)), rng.integers(0, 3, 32), epochs=1, verbose=0)
    return model


def h5_contents(path):
    """Every group's attributes and every dataset's value in the weights of a .keras file."""
    out = {}
    with zipfile.ZipFile(path) as zf, zf.open("model.weights.h5") as f, h5py.File(f) as h5:

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[name] = ("data", obj[()].tobytes(), obj.dtype.str, dict(obj.attrs))
            else:
                out[name] = ("group", dict(obj.attrs))

        h5.visititems(visit)
    return out


def test_the_file_holds_what_model_save_writes(tmp_path):
    model = trained_model()
    state = kerasfile.capture(model)
    model.save(tmp_path / "keras.keras")
    info = kerasfile.write(state, tmp_path / "snap.keras")
    assert h5_contents(tmp_path / "snap.keras") == h5_contents(tmp_path / "keras.keras")
    with zipfile.ZipFile(tmp_path / "snap.keras") as zf:
        names = zf.namelist()
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
    with zipfile.ZipFile(tmp_path / "keras.keras") as zf:
        assert names == zf.namelist()
    assert info == {
        "sha256": sha256_file(tmp_path / "snap.keras"),
        "bytes": (tmp_path / "snap.keras").stat().st_size,
    }
    assert not list(tmp_path.glob("*.h5"))  # the weights' staging file is gone


def test_the_file_holds_the_state_at_capture_not_at_write(tmp_path):
    model = trained_model()
    before = [v.numpy().copy() for v in model.weights + model.optimizer.variables]
    state = kerasfile.capture(model)
    assert state.nbytes >= sum(a.nbytes for a in before)
    rng = np.random.default_rng(1)
    model.fit(rng.normal(size=(32, 4)), rng.integers(0, 3, 32), epochs=1, verbose=0)
    kerasfile.write(state, tmp_path / "snap.keras")
    loaded = keras.models.load_model(tmp_path / "snap.keras")
    after = [v.numpy() for v in loaded.weights + loaded.optimizer.variables]
    assert len(after) == len(before)
    for a, b in zip(after, before, strict=True):
        np.testing.assert_array_equal(a, b)


def test_assets_travel_in_the_file(tmp_path):
    lookup = keras.layers.StringLookup(vocabulary=["a", "b", "c"])
    model = keras.Sequential([keras.Input((1,), dtype="string"), lookup])
    kerasfile.write(kerasfile.capture(model), tmp_path / "snap.keras")
    model.save(tmp_path / "keras.keras")
    with (
        zipfile.ZipFile(tmp_path / "snap.keras") as a,
        zipfile.ZipFile(tmp_path / "keras.keras") as b,
    ):
        assert a.namelist() == b.namelist()
        for name in a.namelist():
            if name.startswith("assets/"):
                assert a.read(name) == b.read(name)
    loaded = keras.models.load_model(tmp_path / "snap.keras")
    assert loaded.layers[-1].get_vocabulary() == lookup.get_vocabulary()
