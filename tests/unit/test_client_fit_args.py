"""``Client.fit`` takes ``model.fit``'s arguments where their meaning carries over, sample
weights included, and names the argument and the accepted forms where it does not."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("flask")

from fitfleet import Client
from service.storage import key_of, open_store
from tests.unit import test_remote
from tests.unit.test_remote import mlp

api = test_remote.api  # the API served in process (SQLite, a file store)

FORMS = (
    "x= as NumPy arrays (one array, a list, or a dict by input name) or as an s3:// "
    "or file:// data URL"
)


def data(n=40):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 6)).astype("float32"), rng.integers(0, 3, n)


def stored(settings, url) -> dict:
    store = open_store(settings.storage_url)
    with np.load(store.base / key_of(store, url)) as z:
        return {k: z[k] for k in z.files}


def test_every_model_fit_argument_has_a_place_in_the_same_order():
    """``model.fit``'s parameters, in their order, are parameters of ``Client.fit``."""
    keras_params = list(inspect.signature(keras.Model.fit).parameters)[1:]
    ours = list(inspect.signature(Client.fit).parameters)[2:]
    assert ours[: len(keras_params)] == keras_params


def test_a_dataset_or_generator_is_refused_naming_the_forms_it_takes(api):
    """Plain Keras takes a tf.data.Dataset or a generator as x; a remote job cannot read
    the client's memory, so fitfleet says which forms x= takes instead of "y is required"."""
    import tensorflow as tf

    client, _ = api
    x, y = data()
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    for value, kind in ((ds, "tf.data.Dataset"), ((b for b in [(x, y)]), "generator")):
        with pytest.raises(TypeError) as info:
            client.fit(mlp(), x=value)
        assert FORMS in str(info.value) and kind in str(info.value)
        assert "y is required" not in str(info.value)
    assert client.jobs() == []


def test_verbose_and_positional_arguments_are_taken_as_model_fit_takes_them(api):
    """Plain Keras: ``model.fit(x, y, 8, 2, verbose=0)`` is batch size 8, 2 epochs, silent.
    fitfleet runs the job with those and ``Run.wait()`` is silent by default."""
    client, _ = api
    x, y = data()
    run = client.fit(mlp(), x, y, 8, 2, 0)
    spec = run.job["spec"]
    assert (spec["fit"]["batch_size"], spec["fit"]["epochs"]) == (8, 2)
    assert run.verbose == 0 and "verbose" not in spec["fit"]
    assert client.fit(mlp(), x, y, verbose="auto").verbose == 1
    assert client.fit(mlp(), x, y, validation_batch_size=32).job["state"] == "queued"


@pytest.mark.parametrize(
    "argument,value",
    [
        ("initial_epoch", 2),
        ("steps_per_epoch", 3),
        ("validation_steps", 1),
        ("validation_freq", 2),
        ("validation_batch_size", 7),
        ("verbose", 5),
    ],
)
def test_what_cannot_carry_over_is_refused_naming_the_argument(api, argument, value):
    client, _ = api
    x, y = data()
    with pytest.raises(ValueError) as info:
        client.fit(mlp(), x, y, **{argument: value})
    assert argument in str(info.value)
    assert client.jobs() == []


def test_sample_weight_arrays_are_uploaded_with_the_data(api):
    """Plain Keras: ``model.fit(x, y, sample_weight=w, validation_data=(xv, yv, wv))``.
    fitfleet uploads w beside x and y, wv beside the validation arrays, and names them in
    ``data.sample_weight``."""
    client, settings = api
    x, y = data()
    w = np.linspace(0.5, 2.0, 32)
    run = client.fit(
        mlp(), x[:32], y[:32], sample_weight=w, validation_data=(x[32:], y[32:], np.full(8, 3.0))
    )
    spec = run.job["spec"]
    assert spec["data"]["sample_weight"] == "sw"
    np.testing.assert_array_equal(stored(settings, spec["data"]["train"])["sw"], w)
    np.testing.assert_array_equal(
        stored(settings, spec["data"]["validation"])["sw"], np.full(8, 3.0)
    )


def test_sample_weight_by_output_name_and_by_url(api, tmp_path):
    client, settings = api
    inp = keras.Input((6,))
    model = keras.Model(
        inp, [keras.layers.Dense(3, name="cls")(inp), keras.layers.Dense(1, name="reg")(inp)]
    )
    model.compile("adam", {"cls": "sparse_categorical_crossentropy", "reg": "mse"})
    x, y = data()
    run = client.fit(
        model,
        x,
        {"reg": x[:, :1], "cls": y},
        sample_weight={"reg": np.ones(40), "cls": np.arange(40.0)},
    )
    assert run.job["spec"]["data"]["sample_weight"] == {"cls": "sw_cls", "reg": "sw_reg"}
    np.testing.assert_array_equal(
        stored(settings, run.job["spec"]["data"]["train"])["sw_cls"], np.arange(40.0)
    )
    np.savez(tmp_path / "t.npz", x=x, y=y, w=np.ones(40))
    run = client.fit(mlp(), (tmp_path / "t.npz").as_uri(), "y", sample_weight="w")
    assert run.job["spec"]["data"]["sample_weight"] == "w"


def test_sample_weights_of_the_wrong_length_are_refused_before_upload(api):
    """Plain Keras refuses sample weights whose length is not the number of samples."""
    client, _ = api
    x, y = data()
    with pytest.raises(ValueError, match="holds 39 weights but x and y hold 40 samples"):
        client.fit(mlp(), x, y, sample_weight=np.ones(39))
    with pytest.raises(ValueError, match="sample weights need sample_weight"):
        client.fit(mlp(), x, y, validation_data=(x, y, np.ones(40)))
    assert client.jobs() == []


def test_with_a_data_url_sample_weight_must_name_columns_not_hold_arrays(api, tmp_path):
    client, _ = api
    x, y = data()
    np.savez(tmp_path / "t.npz", x=x, y=y)
    with pytest.raises(TypeError, match="sample_weight names the array"):
        client.fit(mlp(), (tmp_path / "t.npz").as_uri(), "y", sample_weight=np.ones(40))
    assert client.jobs() == []
