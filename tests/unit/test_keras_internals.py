"""The private Keras calls of service.core.keras_internals exist in the installed Keras."""

from __future__ import annotations

import pytest

from service.core import keras_internals


def test_every_private_keras_call_exists_in_this_keras():
    pytest.importorskip("keras")
    keras_internals.check()  # raises naming the Keras version and the attributes gone


def test_a_missing_internal_is_named_with_the_keras_version(monkeypatch):
    keras = pytest.importorskip("keras")
    owner = next(c for c in keras.Model.__mro__ if "_symbolic_build" in vars(c))
    monkeypatch.delattr(owner, "_symbolic_build")
    with pytest.raises(keras_internals.KerasInternalsMissing) as caught:
        keras_internals.check()
    assert f"Keras {keras.__version__}" in str(caught.value)
    assert "keras.Model._symbolic_build" in str(caught.value)


def test_seed_generators_and_layers_of_a_nested_model():
    keras = pytest.importorskip("keras")
    inner = keras.Sequential([keras.Input((3,)), keras.layers.Dropout(0.5)], name="inner")
    outer = keras.Sequential([keras.Input((3,)), inner, keras.layers.Dense(2)])
    layers = keras_internals.layers_of(outer)
    assert {type(layer).__name__ for layer in layers} >= {"Sequential", "Dropout", "Dense"}
    dropouts = [layer for layer in layers if isinstance(layer, keras.layers.Dropout)]
    assert len(dropouts) == 1 and len(keras_internals.seed_generators_of(dropouts[0])) == 1
