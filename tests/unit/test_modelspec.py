"""Keras models from specs: round trips, summaries equal to Keras's, and safe-mode refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from service.admission import modelspec
from service.core.errors import InvalidSpec


def cnn():
    return keras.Sequential(
        [
            keras.Input((12, 12, 1)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Dropout(0.25),
            keras.layers.BatchNormalization(),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation="softmax"),
        ],
        name="cnn",
    )


def lstm():
    return keras.Sequential(
        [keras.Input((5, 3)), keras.layers.LSTM(6), keras.layers.Dense(1)], name="lstm"
    )


def two_inputs():
    a = keras.Input((3,), name="a")
    b = keras.Input((4,), name="b")
    h = keras.layers.Dense(5, name="h")(keras.layers.Concatenate(name="cat")([a, b]))
    out1 = keras.layers.Dense(1, name="o1")(h)
    out2 = keras.layers.Dense(2, activation="softmax", name="o2")(h)
    return keras.Model([a, b], [out1, out2], name="two_in")


def config_of(model) -> dict:
    return json.loads(model.to_json())


@pytest.mark.parametrize("make", [cnn, lstm, two_inputs])
@pytest.mark.parametrize("materialize", [True, False])
def test_round_trip_and_summary_match_keras(make, materialize):
    original = make()
    built = modelspec.build_model(config_of(original), materialize=materialize)
    summary = modelspec.summarize(built)
    assert summary["name"] == original.name
    assert summary["total_params"] == original.count_params()
    assert summary["trainable_params"] == sum(
        int(np.prod(w.shape)) for w in original.trainable_weights
    )
    assert summary["non_trainable_params"] == sum(
        int(np.prod(w.shape)) for w in original.non_trainable_weights
    )
    assert [layer["name"] for layer in summary["layers"]] == [l.name for l in original.layers]
    assert [layer["params"] for layer in summary["layers"]] == [
        l.count_params() for l in original.layers
    ]
    assert config_of(built)["config"]["layers"] == config_of(original)["config"]["layers"]


def test_summary_shapes_use_null_for_the_batch():
    summary = modelspec.summarize(modelspec.build_model(config_of(cnn())))
    shapes = [layer["output_shape"] for layer in summary["layers"]]
    assert shapes[0] == [None, 10, 10, 4]  # Conv2D
    assert shapes[1] == [None, 5, 5, 4]  # MaxPooling2D
    assert shapes[4] == [None, 100]  # Flatten
    assert summary["non_trainable_params"] == 8  # BatchNormalization's moving mean/variance
    json.dumps(summary)


def test_summary_of_functional_model_lists_inputs_and_classes():
    summary = modelspec.summarize(modelspec.build_model(config_of(two_inputs())))
    by_name = {layer["name"]: layer for layer in summary["layers"]}
    assert by_name["a"]["class_name"] == "InputLayer"
    assert by_name["cat"]["output_shape"] == [None, 7]
    assert by_name["o2"] == {
        "name": "o2",
        "class_name": "Dense",
        "output_shape": [None, 2],
        "params": 12,
    }
    assert summary["class_name"] == "Functional"
    assert summary["output_names"] == ["o1", "o2"]


def test_summary_names_outputs_only_where_keras_matches_targets_by_name():
    assert modelspec.summarize(modelspec.build_model(config_of(cnn())))["output_names"] is None


def test_unknown_optimizers_and_schedules_are_refused_by_name():
    model = modelspec.build_model(config_of(cnn()))
    with pytest.raises(InvalidSpec) as info:
        modelspec.compile_model(model, {"optimizer": "adamm", "loss": "mse"})
    assert "unknown optimizer 'adamm'" in info.value.message and "lamb" in info.value.message
    bad = {
        "class_name": "Adam",
        "config": {"learning_rate": {"class_name": "NoSuchDecay", "config": {}}},
    }
    with pytest.raises(InvalidSpec) as info:
        modelspec.compile_model(model, {"optimizer": bad, "loss": "mse"})
    assert info.value.details == {"field": "compile.optimizer"}
    assert bad["config"]["learning_rate"] == {"class_name": "NoSuchDecay", "config": {}}


def test_multi_output_layer_shape_is_a_list_of_shapes():
    seq_in = keras.Input((4, 2))
    outs = keras.layers.LSTM(3, return_state=True, name="rnn")(seq_in)
    summary = modelspec.summarize(keras.Model(seq_in, outs))
    shapes = {layer["name"]: layer["output_shape"] for layer in summary["layers"]}
    assert shapes["rnn"] == [[None, 3], [None, 3], [None, 3]]


def test_materialized_model_trains_and_weightless_one_has_no_values():
    cfg = config_of(lstm())
    model = modelspec.build_model(cfg)
    modelspec.compile_model(model, {"optimizer": "sgd", "loss": "mse", "metrics": ["mae"]})
    history = model.fit(np.zeros((4, 5, 3), "float32"), np.zeros((4, 1), "float32"), verbose=0)
    assert "mean_absolute_error" in history.history or "mae" in history.history
    weightless = modelspec.build_model(cfg, materialize=False)
    assert weightless.count_params() == model.count_params()
    assert all(getattr(v, "_value", None) is None for v in weightless.weights)


def test_weightless_build_of_a_huge_model_is_fast_and_small():
    cfg = config_of(
        keras.Sequential([keras.Input((8,)), keras.layers.Dense(8), keras.layers.Dense(8)])
    )
    cfg["config"]["layers"][0]["config"]["batch_shape"] = [None, 40_000]
    for layer in cfg["config"]["layers"][1:]:
        layer["config"]["units"] = 40_000
        layer.pop("build_config", None)
    cfg["config"].pop("build_input_shape", None)
    summary = modelspec.validate(
        {"model": cfg, "compile": {"loss": "mse"}, "fit": {"callbacks": []}}
    )
    assert summary["total_params"] == 2 * (40_000 * 40_000 + 40_000)  # 12.8 GB if allocated


def test_lambda_layer_is_refused():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Lambda(lambda t: t * 2, name="x2")])
    with pytest.raises(InvalidSpec) as info:
        modelspec.build_model(config_of(model))
    assert "Lambda" in info.value.message


def test_lambda_is_refused_by_keras_safe_mode_too(monkeypatch):
    """Past the JSON walk, and with unsafe mode switched on in the thread, Keras still refuses."""
    from keras.src.backend.common import global_state

    monkeypatch.setattr(modelspec, "check_keras_json", lambda *_: None)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Lambda(lambda t: t * 2, name="x2")])
    saved = global_state.get_global_attribute("safe_mode_saving")
    keras.config.enable_unsafe_deserialization()  # a careless caller elsewhere in the thread
    try:
        with pytest.raises(InvalidSpec) as info:
            modelspec.build_model(config_of(model))
    finally:
        global_state.set_global_attribute("safe_mode_saving", saved)
    assert "lambda" in info.value.message.lower()


def test_unknown_layer_class_names_the_layer():
    cfg = config_of(cnn())
    cfg["config"]["layers"][2]["class_name"] = "Conv9D"
    cfg["config"]["layers"][2]["config"]["name"] = "pool_a"
    with pytest.raises(InvalidSpec) as info:
        modelspec.build_model(cfg)
    assert "Conv9D" in info.value.message and "'pool_a'" in info.value.message


def test_bad_layer_config_gives_keras_message_without_paths():
    cfg = config_of(cnn())
    cfg["config"]["layers"][1]["config"]["filters"] = "many"
    with pytest.raises(InvalidSpec) as info:
        modelspec.build_model(cfg)
    assert info.value.message.startswith("model: Conv2D layer 'conv2d")
    assert "not supported between instances of 'str' and 'int'" in info.value.message
    assert "/site-packages/" not in info.value.message and len(info.value.message) <= 410


def test_non_model_config_is_refused():
    with pytest.raises(InvalidSpec):
        modelspec.build_model(
            json.loads(json.dumps(keras.saving.serialize_keras_object(keras.layers.Dense(2))))
        )


@pytest.mark.parametrize(
    ("compile_spec", "field"),
    [
        ({"optimizer": "adamz", "loss": "mse"}, "compile.optimizer"),
        ({"optimizer": {"class_name": "Adamz", "config": {}}, "loss": "mse"}, "compile.optimizer"),
        (
            {"optimizer": {"class_name": "Adam", "config": {"learning_rat": 1}}, "loss": "mse"},
            "compile.optimizer",
        ),
        ({"loss": "msee"}, "compile.loss"),
        ({"loss": ["mse", "nope"]}, "compile.loss[1]"),
        ({"loss": "mse", "metrics": ["accuracy", "f2_score_of_nothing"]}, "compile.metrics[1]"),
    ],
)
def test_bad_compile_names_are_refused(compile_spec, field):
    model = modelspec.build_model(config_of(lstm()))
    with pytest.raises(InvalidSpec) as info:
        modelspec.compile_model(model, compile_spec)
    assert info.value.message.startswith(field)
    assert info.value.details == {"field": field}


def test_compile_accepts_keras_forms():
    model = modelspec.build_model(config_of(two_inputs()))
    modelspec.compile_model(
        model,
        {
            "optimizer": {"class_name": "Adam", "config": {"learning_rate": 0.01}},
            "loss": {
                "o1": "mse",
                "o2": {
                    "class_name": "SparseCategoricalCrossentropy",
                    "config": {"from_logits": False},
                },
            },
            "metrics": {"o1": ["mae"], "o2": ["acc"]},
            "loss_weights": {"o1": 0.5, "o2": 1.0},
        },
    )
    assert model.optimizer.__class__.__name__ == "Adam"
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.01)
    x = [np.zeros((4, 3), "float32"), np.zeros((4, 4), "float32")]
    logs = model.fit(x, [np.zeros((4, 1)), np.zeros((4,), "int64")], verbose=0).history
    assert "o2_acc" in logs


def test_make_callbacks_builds_allowed_classes():
    cbs = modelspec.make_callbacks(
        [
            {"class_name": "EarlyStopping", "config": {"monitor": "val_loss", "patience": 2}},
            {"class_name": "ReduceLROnPlateau", "config": {"factor": 0.5}},
            {"class_name": "TerminateOnNaN"},
        ]
    )
    assert [type(c).__name__ for c in cbs] == [
        "EarlyStopping",
        "ReduceLROnPlateau",
        "TerminateOnNaN",
    ]
    assert cbs[0].patience == 2 and cbs[1].factor == 0.5


@pytest.mark.parametrize(
    "item",
    [
        {"class_name": "ModelCheckpoint", "config": {"filepath": "/tmp/m.keras"}},
        {"class_name": "EarlyStopping", "config": {"patience_": 2}},
    ],
)
def test_make_callbacks_refuses(item):
    with pytest.raises(InvalidSpec) as info:
        modelspec.make_callbacks([item])
    assert info.value.message.startswith("fit.callbacks[0]")


def test_validate_returns_the_summary():
    spec = {
        "model": config_of(cnn()),
        "compile": {"loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"]},
        "fit": {"callbacks": [{"class_name": "EarlyStopping", "config": {}}]},
    }
    summary = modelspec.validate(spec)
    assert summary["total_params"] == cnn().count_params()


def test_keras_message_strips_paths_and_length():
    exc = ValueError("cannot open /home/user/secret/weights.h5 at /opt/x/y\n\nlong tail")
    msg = modelspec.keras_message(exc)
    assert "/home/user" not in msg and "<path>" in msg and "long tail" not in msg
    assert len(modelspec.keras_message(ValueError("x" * 5000))) == 400


def test_a_schedule_without_module_compiles_and_the_spec_is_left_as_it_was():
    """What the workers compile: the schedule object in the optimizer, the spec unchanged."""
    schedule = {
        "class_name": "CosineDecay",
        "config": {"initial_learning_rate": 0.01, "decay_steps": 20},
    }
    spec = {
        "optimizer": {"class_name": "Lamb", "config": {"learning_rate": schedule}},
        "loss": "mse",
    }
    before = json.dumps(spec, sort_keys=True)
    model = modelspec.build_model(config_of(cnn()))
    modelspec.compile_model(model, spec)
    assert type(model.optimizer).__name__ == "Lamb"
    assert isinstance(model.optimizer._learning_rate, keras.optimizers.schedules.CosineDecay)
    assert json.dumps(spec, sort_keys=True) == before
