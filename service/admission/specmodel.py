"""The job spec as pydantic models: they validate a submission, fill its defaults and are
the source of the OpenAPI document's ``JobSpec`` schema.

Each section refuses keys it does not name and counts null as empty; each field's check
(:mod:`service.admission.spec_fields`) names the field's path in its message. The safety
walk of the Keras JSON (:mod:`service.admission.spec_safety`) runs on the model, the
compile section and the callbacks' arguments before their fields are read.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    Field,
    SkipValidation,
    ValidationInfo,
    model_validator,
)

from service.admission import allowed
from service.admission import spec_fields as f
from service.admission.spec_callbacks import Callback, callback_list
from service.admission.spec_distribute import (
    STRATEGIES,
    MultiWorker,
    check_distribute,
    check_multi_worker,
)
from service.admission.spec_fields import Section, check
from service.admission.spec_safety import check_depth, check_keras_json

MODEL_CLASSES = allowed.MODEL_CLASSES
DATA_FORMATS = (None, *allowed.DATA_FORMATS)  # null: told by the file's suffix
QUEUE_PATTERN = r"^[A-Za-z0-9_.-]{1,100}$"


class KerasObject(Section):
    """A serialized Keras object (``keras.saving.serialize_keras_object``)."""

    class_name: str = Field(min_length=1)
    config: dict = Field(default_factory=dict)
    module: str | None = None
    registered_name: str | None = None


KerasForm = str | KerasObject
PerOutput = KerasForm | list[KerasForm] | dict[str, KerasForm | list[KerasForm]]


class KerasModel(BaseModel):
    """The JSON of ``model.to_json()``, as an object or a string."""

    class_name: Literal[MODEL_CLASSES]
    config: dict
    module: str | None = None
    registered_name: str | None = None


def _model(value: object, info: ValidationInfo) -> dict:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise f.problem(f"model is a string but not valid JSON: {exc.msg}") from None
        check_depth(value)
    if not isinstance(value, dict) or not isinstance(value.get("config"), dict):
        raise f.problem("model must be a Keras model config object with class_name and config")
    if value.get("class_name") not in MODEL_CLASSES:
        raise f.problem(
            f"model.class_name must be one of {', '.join(MODEL_CLASSES)}, "
            f"got {f.show(value.get('class_name'))}",
            sub=".class_name",
        )
    check_keras_json(value, "model", info.context["allow"])
    return value


def _name(value: object) -> str | None:
    if value is not None and (
        not isinstance(value, str)
        or not value.strip()
        or len(value) > 200
        or not value.isprintable()
    ):
        raise f.problem(
            f"name must be a printable string of 1 to 200 characters, got {f.show(value)}"
        )
    return value


class Compile(Section):
    """``keras.Model.compile`` arguments in their serialized forms."""

    REQUIRED: ClassVar[dict[str, str]] = {"loss": "{path}.loss is required"}

    optimizer: Annotated[SkipValidation[KerasForm], check(f.keras_object)] = Field(
        "adam", description="a Keras optimizer name or serialized optimizer"
    )
    loss: Annotated[SkipValidation[PerOutput], check(f.per_output)] = Field(
        description="a Keras loss, a list (one per output) or an object of output name to loss"
    )
    metrics: Annotated[
        SkipValidation[list[KerasForm] | dict[str, KerasForm | list[KerasForm]]], check(f.metrics)
    ] = Field(default_factory=list)
    loss_weights: Annotated[
        list[Annotated[float, Field(ge=0)]] | dict[str, Annotated[float, Field(ge=0)]] | None,
        check(f.loss_weights),
    ] = None

    @classmethod
    def _walk(cls, value: dict, info: ValidationInfo) -> dict:
        check_keras_json(value, "compile", frozenset())
        return value


class Data(Section):
    """Where the data is and which arrays or columns feed the model."""

    REQUIRED: ClassVar[dict[str, str]] = {
        "train": "{path}.train is required (an s3:// or file:// URL)"
    }
    OMIT_NONE: ClassVar[tuple[str, ...]] = ("sample_weight",)

    train: Annotated[str, check(f.data_url)] = Field(
        description="s3://bucket/key or file:///path of an .npz, .csv, Parquet or TFRecord "
        "file; ending in / a prefix of shards"
    )
    validation: Annotated[str | None, check(lambda v: None if v is None else f.data_url(v))] = None
    x: Annotated[str | list[str], check(f.names)] = Field(
        "x", description="the input array (or column) name, or one per model input"
    )
    y: Annotated[str | list[str] | dict[str, str], check(f.names_by_output)] = Field(
        "y", description="the target name, one per output, or an object of output name to name"
    )
    format: Annotated[
        Literal[DATA_FORMATS], check(f.one_of(DATA_FORMATS, f"null, {allowed.quoted_formats()}"))
    ] = Field(None, description="null: from the file name")
    sample_weight: Annotated[
        str | list[str] | dict[str, str] | None, check(f.sample_weight_names)
    ] = Field(None, description="per-sample weights: a name, one per output, or by output name")


def _split(value: object) -> float:
    split = f.finite(0.0 if value is None else value, 0.0)
    if split >= 1.0:
        raise f.problem(f"{{path}} must be in [0, 1), got {f.show(split)}")
    return split


def _epochs(value: object, info: ValidationInfo) -> int:
    return f.bounded_int(value, 1, info.context["settings"].max_epochs, 1)


class Fit(Section):
    """``keras.Model.fit`` arguments."""

    epochs: Annotated[int, Field(ge=1), check(_epochs)] = Field(
        1, description="at most FITFLEET_MAX_EPOCHS"
    )
    batch_size: Annotated[int, check(f.integer(1, 2**31 - 1, 32))] = Field(32, ge=1)
    validation_split: Annotated[float, check(_split)] = Field(0.0, ge=0, lt=1)
    shuffle: Annotated[bool, check(f.boolean(True))] = True
    callbacks: Annotated[list[Callback], check(callback_list)] = Field(default_factory=list)
    class_weight: Annotated[
        dict[str, Annotated[float, Field(ge=0)]] | None, check(f.class_weight)
    ] = Field(None, description="class index (as a string) to weight")

    @classmethod
    def _walk(cls, value: dict, info: ValidationInfo) -> dict:
        items = value.get("callbacks")
        for i, item in enumerate(items if isinstance(items, list) else []):
            if isinstance(item, dict) and isinstance(item.get("config"), dict):
                check_keras_json(item["config"], f"fit.callbacks[{i}].config", frozenset())
        return value


class KeepBest(Section):
    """Keep the best checkpoint by a monitored metric besides the last ones."""

    REQUIRED: ClassVar[dict[str, str]] = {
        "monitor": '{path}.monitor must be a metric name such as "val_loss", got null'
    }

    monitor: Annotated[
        str,
        Field(min_length=1),
        check(lambda v: v if isinstance(v, str) and v else _bad_monitor(v)),
    ]
    mode: Annotated[Literal["min", "max"], check(f.one_of(("min", "max"), '"min" or "max"'))] = (
        "min"
    )


def _bad_monitor(value: object):
    raise f.problem(f'{{path}} must be a metric name such as "val_loss", got {f.show(value)}')


class Checkpointing(Section):
    """When checkpoints are written and how many are kept."""

    every_epoch: Annotated[bool, check(f.boolean(True))] = True
    every_n_batches: Annotated[
        Annotated[int, Field(ge=1)] | None, check(f.integer(1, 2**31 - 1))
    ] = None
    every_seconds: Annotated[float | None, check(f.number(0.001, optional=True))] = None
    keep_last: Annotated[int, Field(ge=1, le=10_000), check(f.integer(1, 10_000, 3))] = 3
    keep_best: KeepBest | None = None


def _max_attempts(value: object, info: ValidationInfo) -> int:
    return f.bounded_int(value, 1, 100, info.context["settings"].max_attempts)


def _queue(value: object) -> str:
    if not isinstance(value, str) or not re.fullmatch(QUEUE_PATTERN, value):
        raise f.problem(f"queue must match [A-Za-z0-9_.-]{{1,100}}, got {f.show(value)}")
    return value


class JobSpec(Section):
    """A job spec: a Keras model's ``to_json()``, compile settings in Keras forms, data
    locations, fit and checkpoint options. A refusal names each field at fault."""

    REQUIRED: ClassVar[dict[str, str]] = {
        "model": "model is required (the JSON of a Keras model's to_json())"
    }
    SECTIONS: ClassVar[tuple[str, ...]] = ("compile", "data", "fit", "checkpoint")

    name: Annotated[Annotated[str, Field(min_length=1, max_length=200)] | None, check(_name)] = (
        Field(None, description="default: the model's name")
    )
    model: Annotated[SkipValidation[KerasModel | str], check(_model)]
    compile: Compile
    data: Data
    fit: Fit = Field(default_factory=Fit)
    checkpoint: Checkpointing = Field(default_factory=Checkpointing)
    seed: Annotated[int, Field(ge=0, le=2**32 - 1), check(f.integer(0, 2**32 - 1, 0))] = 0
    deterministic: Annotated[bool, check(f.boolean(True))] = True
    queue: Annotated[str, check(_queue)] = Field("default", pattern=QUEUE_PATTERN)
    priority: Annotated[int, Field(ge=0, le=9), check(f.integer(0, 9, 0))] = 0
    max_attempts: Annotated[Annotated[int, Field(ge=1, le=100)] | None, check(_max_attempts)] = (
        Field(None, validate_default=True, description="default: FITFLEET_MAX_ATTEMPTS")
    )
    distribute: Annotated[Literal[STRATEGIES] | MultiWorker, check(check_distribute)] = Field(
        None,
        description='"mirrored": every GPU of the worker; null: one device; '
        '{"strategy": "multi_worker_mirrored", "workers": N}: N workers together',
    )

    @classmethod
    def _walk(cls, value: dict, info: ValidationInfo) -> dict:
        return {**{k: None for k in cls.SECTIONS}, **value}  # a copy: the posted spec stays

    @model_validator(mode="after")
    def _together(self) -> JobSpec:
        if self.name is None:
            given = self.model["config"].get("name")
            self.name = given[:200] if isinstance(given, str) and given.strip() else "job"
        if self.data.sample_weight is not None and self.fit.class_weight:
            raise f.problem(
                "data.sample_weight and fit.class_weight cannot both be set (Keras "
                "refuses both at once); fold the class weights into the sample "
                "weights",
                sub="data.sample_weight",
            )
        if self.data.validation and self.fit.validation_split > 0:
            raise f.problem(
                "data.validation and fit.validation_split cannot both be set",
                sub="fit.validation_split",
            )
        if isinstance(self.distribute, MultiWorker):
            check_multi_worker(self.distribute.workers, self.fit.batch_size, self.checkpoint)
        return self


def plain(value: Any) -> Any:
    """A validated model as the plain JSON the workers read (field order kept)."""
    if isinstance(value, BaseModel):
        omit = getattr(value, "OMIT_NONE", ())
        return {
            k: plain(getattr(value, k))
            for k in type(value).model_fields
            if not (k in omit and getattr(value, k) is None)
        }
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
