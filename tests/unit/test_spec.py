"""Job spec normalization: defaults, every refusal with its field path, and the safety walk."""

from __future__ import annotations

import copy
import json

import pytest

from service.admission.spec import normalize
from service.core.config import Settings
from service.core.errors import BadRequest, InvalidSpec

SETTINGS = Settings.from_env({}, max_epochs=1000, max_attempts=4)


def dense(name: str, units: int) -> dict:
    return {
        "module": "keras.layers",
        "class_name": "Dense",
        "registered_name": None,
        "config": {
            "name": name,
            "units": units,
            "activation": "relu",
            "kernel_initializer": {
                "module": "keras.initializers",
                "class_name": "GlorotUniform",
                "config": {"seed": None},
                "registered_name": None,
            },
        },
    }


def model(name: str = "mlp") -> dict:
    """A Sequential config in the shape of ``json.loads(model.to_json())``."""
    return {
        "module": "keras",
        "class_name": "Sequential",
        "registered_name": None,
        "config": {
            "name": name,
            "trainable": True,
            "layers": [
                {
                    "module": "keras.layers",
                    "class_name": "InputLayer",
                    "registered_name": None,
                    "config": {"batch_shape": [None, 4], "dtype": "float32", "name": "in"},
                },
                dense("hidden", 8),
                dense("out", 3),
            ],
        },
    }


def minimal(**extra) -> dict:
    spec = {"model": model(), "compile": {"loss": "mse"}, "data": {"train": "s3://bucket/d.npz"}}
    spec.update(extra)
    return spec


def refuse(raw, *fragments, error=InvalidSpec) -> str:
    with pytest.raises(error) as info:
        normalize(raw, SETTINGS)
    for fragment in fragments:
        assert fragment in info.value.message, info.value.message
    return info.value.message


def test_minimal_spec_gets_every_default():
    spec = normalize(minimal(), SETTINGS)
    assert spec["name"] == "mlp"
    assert spec["compile"] == {
        "optimizer": "adam",
        "loss": "mse",
        "metrics": [],
        "loss_weights": None,
    }
    assert spec["data"] == {
        "train": "s3://bucket/d.npz",
        "validation": None,
        "x": "x",
        "y": "y",
        "format": None,
    }
    assert spec["fit"] == {
        "epochs": 1,
        "batch_size": 32,
        "validation_split": 0.0,
        "shuffle": True,
        "callbacks": [],
        "class_weight": None,
    }
    assert spec["checkpoint"] == {
        "every_epoch": True,
        "every_n_batches": None,
        "every_seconds": None,
        "keep_last": 3,
        "keep_best": None,
    }
    assert (spec["seed"], spec["deterministic"], spec["queue"], spec["priority"]) == (
        0,
        True,
        "default",
        0,
    )
    assert spec["max_attempts"] == 4  # settings.max_attempts


def test_full_spec_keeps_given_values():
    raw = minimal(
        name="digits",
        seed=7,
        deterministic=False,
        queue="gpu.a100",
        priority=9,
        max_attempts=5,
        compile={
            "optimizer": {"class_name": "Adam", "config": {"learning_rate": 0.01}},
            "loss": {"out": "sparse_categorical_crossentropy"},
            "metrics": ["accuracy"],
            "loss_weights": {"out": 1},
        },
        data={
            "train": "file:///data/train.csv",
            "validation": "s3://b/val.csv",
            "x": ["a", "b"],
            "y": "label",
            "format": "csv",
        },
        fit={
            "epochs": 12,
            "batch_size": 8,
            "shuffle": False,
            "callbacks": [{"class_name": "EarlyStopping", "config": {"patience": 2}}],
            "class_weight": {"0": 1, "1": 2.5},
        },
        checkpoint={
            "every_epoch": False,
            "every_n_batches": 50,
            "every_seconds": 30,
            "keep_last": 1,
            "keep_best": {"monitor": "val_loss"},
        },
    )
    spec = normalize(raw, SETTINGS)
    assert spec["name"] == "digits" and spec["queue"] == "gpu.a100" and spec["priority"] == 9
    assert spec["compile"]["optimizer"]["config"] == {"learning_rate": 0.01}
    assert spec["compile"]["loss_weights"] == {"out": 1.0}
    assert spec["data"]["x"] == ["a", "b"] and spec["data"]["format"] == "csv"
    assert spec["fit"]["class_weight"] == {"0": 1.0, "1": 2.5}
    assert spec["fit"]["callbacks"] == [{"class_name": "EarlyStopping", "config": {"patience": 2}}]
    assert spec["checkpoint"]["keep_best"] == {"monitor": "val_loss", "mode": "min"}
    assert spec["checkpoint"]["every_seconds"] == 30.0
    json.dumps(spec)  # stays plain JSON


def test_model_as_json_string_is_parsed():
    spec = normalize(minimal(model=json.dumps(model("from-string"))), SETTINGS)
    assert spec["model"]["config"]["name"] == "from-string"
    assert spec["name"] == "from-string"


def test_name_falls_back_to_job_without_a_model_name():
    m = model()
    del m["config"]["name"]
    assert normalize(minimal(model=m), SETTINGS)["name"] == "job"


def test_input_is_not_modified():
    raw = minimal()
    before = copy.deepcopy(raw)
    normalize(raw, SETTINGS)
    assert raw == before


@pytest.mark.parametrize("body", [[1, 2], "spec", None, 3])
def test_non_object_body_is_a_bad_request(body):
    refuse(body, "must be a JSON object", error=BadRequest)


@pytest.mark.parametrize(
    ("raw", "fragments"),
    [
        ({"compile": {"loss": "mse"}, "data": {"train": "s3://b/k"}}, ["model is required"]),
        (minimal(compile={}), ["compile.loss is required"]),
        (minimal(compile=None), ["compile.loss is required"]),
        (minimal(data={"x": "x"}), ["data.train is required"]),
        (minimal(fit={"epochs": -3}), ["fit.epochs must be a positive integer, got -3"]),
        (minimal(fit={"epochs": 1001}), ["fit.epochs must be at most 1000, got 1001"]),
        (minimal(fit={"epochs": "5"}), ["fit.epochs", '"5"']),
        (minimal(fit={"epochs": True}), ["fit.epochs", "true"]),
        (minimal(fit={"batch_size": 0}), ["fit.batch_size must be a positive integer"]),
        (minimal(fit={"validation_split": 1}), ["fit.validation_split must be in [0, 1)"]),
        (minimal(fit={"validation_split": -0.1}), ["fit.validation_split"]),
        (minimal(fit={"shuffle": "yes"}), ["fit.shuffle must be true or false"]),
        (minimal(fit={"class_weight": {"cat": 1}}), ["fit.class_weight keys"]),
        (minimal(fit={"class_weight": {"0": -1}}), ["fit.class_weight.0"]),
        (minimal(priority=10), ["priority must be an integer from 0 to 9, got 10"]),
        (minimal(max_attempts=0), ["max_attempts"]),
        (minimal(seed=-1), ["seed must be a non-negative integer"]),
        (minimal(queue="bad queue!"), ["queue must match"]),
        (minimal(name=""), ["name must be"]),
        (minimal(name="x" * 201), ["name must be"]),
        (minimal(model="{not json"), ["model is a string but not valid JSON"]),
        (minimal(model={"class_name": "Dense", "config": {}}), ["model.class_name must be one of"]),
        (minimal(model=[1]), ["model must be a Keras model config"]),
        (minimal(compile={"loss": 3}), ["compile.loss must be a name"]),
        (
            minimal(compile={"loss": "mse", "optimizer": {"config": {}}}),
            ["compile.optimizer.class_name"],
        ),
        (
            minimal(compile={"loss": "mse", "metrics": "accuracy"}),
            ["compile.metrics must be a list"],
        ),
        (minimal(compile={"loss": "mse", "loss_weights": "1"}), ["compile.loss_weights"]),
        (minimal(data={"train": "s3://b/k", "format": "hdf5"}), ["data.format"]),
        (minimal(data={"train": "s3://b/k", "x": []}), ["data.x must be a name"]),
        (
            minimal(
                data={"train": "s3://b/k", "validation": "s3://b/v"}, fit={"validation_split": 0.1}
            ),
            ["cannot both be set"],
        ),
        (minimal(checkpoint={"keep_last": 0}), ["checkpoint.keep_last must be a positive integer"]),
        (minimal(checkpoint={"every_seconds": 0}), ["checkpoint.every_seconds"]),
        (
            minimal(checkpoint={"keep_best": {"monitor": "val_loss", "mode": "up"}}),
            ["checkpoint.keep_best.mode"],
        ),
        (minimal(checkpoint={"keep_best": {"mode": "min"}}), ["checkpoint.keep_best.monitor"]),
        (minimal(fit=[]), ["fit must be an object"]),
    ],
)
def test_bad_fields_are_refused_with_their_path(raw, fragments):
    refuse(raw, *fragments)


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/d.npz",
        "ftp://host/d.npz",
        "s3://bucket",
        "s3://bucket/",
        "s3:///key",
        "file://host/data.npz",
        "file:relative.npz",
        "file:///",
        "/abs/path.npz",
        "d.npz",
        "s3://b/k?versionId=1",
        "s3://b/with space",
        7,
        "",
    ],
)
def test_data_urls_other_than_s3_and_file_are_refused(url):
    msg = refuse(minimal(data={"train": url}), "data.train must be an s3://bucket/key or file:///")
    assert msg.endswith(json.dumps(url)[:80])


def test_data_urls_may_name_a_prefix_of_shards_and_newer_formats():
    spec = normalize(
        minimal(data={"train": "s3://b/shards/", "validation": "file:///v/", "format": "parquet"}),
        SETTINGS,
    )
    assert spec["data"]["train"] == "s3://b/shards/" and spec["data"]["format"] == "parquet"


def test_data_url_checks_validation_too():
    refuse(minimal(data={"train": "s3://b/k", "validation": "gs://b/v"}), "data.validation")


@pytest.mark.parametrize(
    ("section", "key"),
    [
        (None, "epochs"),
        ("compile", "optimiser"),
        ("data", "path"),
        ("fit", "steps"),
        ("checkpoint", "every"),
    ],
)
def test_unknown_keys_are_named(section, key):
    raw = minimal()
    if section is None:
        raw[key] = 1
    else:
        raw.setdefault(section, {})[key] = 1
    with pytest.raises(InvalidSpec) as info:
        normalize(raw, SETTINGS)
    assert "unknown key" in info.value.message and key in info.value.message
    assert info.value.details["unknown"] == [key]


@pytest.mark.parametrize(
    "callback",
    [
        {"class_name": "ModelCheckpoint", "config": {"filepath": "/tmp/x"}},
        {"class_name": "LambdaCallback", "config": {}},
        {"class_name": "EarlyStopping", "config": [1]},
        {"class_name": "EarlyStopping", "extra": 1},
        "EarlyStopping",
    ],
)
def test_only_allowed_callbacks(callback):
    with pytest.raises(InvalidSpec) as info:
        normalize(minimal(fit={"callbacks": [callback]}), SETTINGS)
    assert "fit.callbacks[0]" in info.value.message


def test_allowed_callbacks_pass():
    cbs = [{"class_name": n} for n in ("EarlyStopping", "ReduceLROnPlateau", "TerminateOnNaN")]
    spec = normalize(minimal(fit={"callbacks": cbs}), SETTINGS)
    assert [c["config"] for c in spec["fit"]["callbacks"]] == [{}, {}, {}]


def _with_layer(layer: dict) -> dict:
    m = model()
    m["config"]["layers"].insert(2, layer)
    return minimal(model=m)


def test_lambda_layer_is_refused():
    layer = {
        "module": "keras.layers",
        "class_name": "Lambda",
        "registered_name": None,
        "config": {
            "name": "lam",
            "function": {"class_name": "__lambda__", "config": {"code": "4wEAAAAA"}},
        },
    }
    msg = refuse(_with_layer(layer), "Lambda objects are not allowed")
    assert "model.config.layers[2].class_name" in msg


@pytest.mark.parametrize("class_name", ["TFOpLambda", "__lambda__"])
def test_other_code_carrying_classes_are_refused(class_name):
    layer = dense("d", 2)
    layer["config"]["activation"] = {"class_name": class_name, "config": {"code": "x"}}
    refuse(_with_layer(layer), f"{class_name} objects are not allowed")


@pytest.mark.parametrize("module", ["os", "builtins", "my_package.layers", "kerasx.layers", 3])
def test_modules_outside_keras_are_refused(module):
    layer = dense("d", 2)
    layer["module"] = module
    refuse(_with_layer(layer), "model.config.layers[2].module", "is not allowed")


def test_keras_submodules_are_allowed():
    layer = dense("d", 2)
    layer["module"] = "keras.src.layers.core.dense"
    assert normalize(_with_layer(layer), SETTINGS)["model"]["config"]["layers"][2] == layer


@pytest.mark.parametrize("registered", ["my_pkg>MyLayer", "evil/Layer", "keras_x>Dense"])
def test_custom_registered_names_are_refused(registered):
    layer = dense("d", 2)
    layer["registered_name"] = registered
    refuse(_with_layer(layer), "registered_name", "custom object")


def test_keras_registered_names_are_allowed():
    layer = dense("d", 2)
    layer["registered_name"] = "keras>Dense"
    m = normalize(_with_layer(layer), SETTINGS)["model"]
    assert m["config"]["layers"][2]["registered_name"] == "keras>Dense"


@pytest.mark.parametrize("key", ["safe_mode", "enable_unsafe_deserialization"])
def test_safe_mode_switches_are_refused(key):
    raw = minimal()
    raw["model"]["config"]["layers"][1]["config"][key] = False
    refuse(raw, key, "is not allowed")


def test_compile_section_is_walked_too():
    raw = minimal(compile={"loss": {"module": "os", "class_name": "system", "config": {}}})
    refuse(raw, "compile.loss.module")


def test_callback_config_is_walked_too():
    raw = minimal(
        fit={
            "callbacks": [
                {
                    "class_name": "EarlyStopping",
                    "config": {"x": {"module": "os", "class_name": "s"}},
                }
            ]
        }
    )
    refuse(raw, "fit.callbacks[0].config.x.module")


def test_nesting_deeper_than_100_levels_is_refused():
    deep: object = 1
    for _ in range(101):
        deep = [deep]
    raw = minimal()
    raw["model"]["config"]["extra"] = deep
    refuse(raw, "nested deeper than 100 levels")


def test_nesting_within_the_limit_is_fine():
    deep: object = 1
    for _ in range(90):
        deep = [deep]
    raw = minimal()
    raw["model"]["config"]["extra"] = deep
    assert normalize(raw, SETTINGS)["model"]["config"]["extra"] == deep


def test_error_details_name_the_field():
    with pytest.raises(InvalidSpec) as info:
        normalize(minimal(fit={"batch_size": -1}), SETTINGS)
    assert info.value.status == 422
    assert info.value.envelope()["error"]["details"] == {"field": "fit.batch_size"}


def test_targets_may_be_named_by_output():
    y = {"cls": "labels", "reg": "target"}
    assert normalize(minimal(data={"train": "s3://b/d.npz", "y": y}), SETTINGS)["data"]["y"] == y
    refuse(minimal(data={"train": "s3://b/d.npz", "y": {}}), "data.y must not be an empty")
    refuse(
        minimal(data={"train": "s3://b/d.npz", "y": {"cls": 3}}),
        "data.y.cls must be an array name, got 3",
    )


def test_every_problem_is_listed_with_its_path():
    raw = minimal(name="", compile={"loss": 3}, fit={"epochs": 0, "shuffle": "no"})
    with pytest.raises(InvalidSpec) as info:
        normalize(raw, SETTINGS)
    details = info.value.details
    assert details["field"] == "name" and "and 3 more" in info.value.message
    assert [p["field"] for p in details["problems"]] == [
        "name",
        "compile.loss",
        "fit.epochs",
        "fit.shuffle",
    ]
    assert details["problems"][2]["message"] == "fit.epochs must be a positive integer, got 0"


@pytest.mark.parametrize(
    ("callback", "field", "words"),
    [
        (
            {"class_name": "EarlyStopping", "config": {"patience": "2"}},
            "fit.callbacks[0].config.patience",
            'valid integer, got "2"',
        ),
        (
            {"class_name": "EarlyStopping", "config": {"mode": "up"}},
            "fit.callbacks[0].config.mode",
            "'auto', 'min' or 'max'",
        ),
        (
            {"class_name": "ReduceLROnPlateau", "config": {"epsilon": 1e-4}},
            "fit.callbacks[0].config.epsilon",
            "ReduceLROnPlateau takes no argument 'epsilon'",
        ),
        (
            {"class_name": "ReduceLROnPlateau", "config": {"factor": 1.5}},
            "fit.callbacks[0].config.factor",
            "less than 1",
        ),
        (
            {"class_name": "TerminateOnNaN", "config": {"raise_error": 1}},
            "fit.callbacks[0].config.raise_error",
            "valid boolean",
        ),
    ],
)
def test_callback_arguments_are_checked_by_name(callback, field, words):
    with pytest.raises(InvalidSpec) as info:
        normalize(minimal(fit={"callbacks": [callback]}), SETTINGS)
    assert info.value.details["field"] == field
    assert info.value.message.startswith(f"{field}: ") and words in info.value.message


def test_callback_arguments_are_stored_as_sent():
    config = {
        "monitor": "val_loss",
        "patience": 3,
        "restore_best_weights": True,
        "baseline": None,
        "min_delta": 0,
    }
    cbs = [
        {"class_name": "EarlyStopping", "config": config},
        {"class_name": "ReduceLROnPlateau", "config": {"factor": 0.5, "min_lr": 1e-5}},
    ]
    spec = normalize(minimal(fit={"callbacks": cbs}), SETTINGS)
    assert spec["fit"]["callbacks"] == cbs


def test_null_sections_and_fields_mean_the_defaults_and_the_spec_is_not_touched():
    raw = minimal(
        fit=None,
        checkpoint={"every_n_batches": None, "keep_best": None},
        seed=None,
        max_attempts=None,
        name=None,
    )
    before = copy.deepcopy(raw)
    spec = normalize(raw, SETTINGS)
    assert raw == before and "fit" in raw and "distribute" not in raw
    assert spec["fit"]["epochs"] == 1 and spec["seed"] == 0 and spec["max_attempts"] == 4
    assert spec["checkpoint"]["every_n_batches"] is None and spec["name"] == "mlp"
    assert list(spec) == [
        "name",
        "model",
        "compile",
        "data",
        "fit",
        "checkpoint",
        "seed",
        "deterministic",
        "queue",
        "priority",
        "max_attempts",
        "distribute",
    ]


def test_the_schema_is_that_of_the_validating_models():
    from service.admission.spec_callbacks import CALLBACKS
    from service.web.schemas import components

    schemas = components()
    spec = schemas["JobSpec"]
    assert spec["required"] == ["model", "compile", "data"]
    assert spec["additionalProperties"] is False
    assert spec["properties"]["fit"] == {"$ref": "#/components/schemas/Fit"}
    fit = schemas["Fit"]["properties"]
    assert fit["validation_split"]["exclusiveMaximum"] == 1
    assert schemas["Callback"]["properties"]["class_name"]["enum"] == list(CALLBACKS)
    assert set(schemas["EarlyStoppingConfig"]["properties"]) >= {
        "monitor",
        "patience",
        "restore_best_weights",
    }
    assert schemas["Data"]["properties"]["format"]["enum"] == [
        None,
        "npz",
        "csv",
        "parquet",
        "tfrecord",
    ]


def test_a_model_problem_comes_first():
    with pytest.raises(InvalidSpec) as info:
        normalize(minimal(name="", model=[1]), SETTINGS)
    assert info.value.details["field"] == "model"
    assert [p["field"] for p in info.value.details["problems"]] == ["model", "name"]


def test_the_specs_admission_takes_validate_against_the_document():
    jsonschema = pytest.importorskip("jsonschema")
    from fitfleet.demo import EXAMPLES, load_example
    from service.web.schemas import components

    schema = {"$ref": "#/components/schemas/JobSpec", "components": {"schemas": components()}}
    full = minimal(
        name="digits",
        seed=7,
        queue="gpu.a100",
        priority=9,
        max_attempts=5,
        distribute="mirrored",
        compile={
            "optimizer": {"class_name": "Adam", "config": {"learning_rate": 0.01}},
            "loss": {"out": "mse"},
            "metrics": ["mae"],
            "loss_weights": {"out": 1},
        },
        data={
            "train": "s3://b/t.csv",
            "x": ["a", "b"],
            "y": {"out": "label"},
            "format": "csv",
            "sample_weight": "w",
        },
        fit={
            "epochs": 3,
            "callbacks": [{"class_name": "EarlyStopping", "config": {"patience": 2}}],
        },
        checkpoint={"every_n_batches": 50, "keep_best": {"monitor": "val_loss"}},
    )
    raws = [minimal(), full] + [load_example(p.stem) for p in sorted(EXAMPLES.glob("*.json"))]
    for raw in raws:
        normalize(raw, SETTINGS)
        jsonschema.validate(raw, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(minimal(fit={"steps": 1}), schema)
