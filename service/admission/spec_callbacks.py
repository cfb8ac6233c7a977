"""The callbacks a job spec may name, and each one's constructor arguments as a model.

A callback's ``config`` is checked against its arguments' model (unknown arguments and
wrong JSON types are refused, naming the argument) and stored as it was sent; Keras fills
the defaults when the worker builds the callback.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SkipValidation,
    ValidationError,
    model_validator,
)

from service.admission import spec_fields as f
from service.admission.allowed import CALLBACKS
from service.admission.spec_fields import Section, check


class Arguments(BaseModel):
    """A callback's constructor arguments: only those it names, in their JSON types."""

    model_config = ConfigDict(extra="forbid", strict=True)


class EarlyStoppingConfig(Arguments):
    monitor: str = "val_loss"
    min_delta: float = 0
    patience: int = Field(0, ge=0)
    verbose: int = 0
    mode: Literal["auto", "min", "max"] = "auto"
    baseline: float | None = None
    restore_best_weights: bool = False
    start_from_epoch: int = Field(0, ge=0)


class ReduceLROnPlateauConfig(Arguments):
    monitor: str = "val_loss"
    factor: float = Field(0.1, gt=0, lt=1)
    patience: int = Field(10, ge=0)
    verbose: int = 0
    mode: Literal["auto", "min", "max"] = "auto"
    min_delta: float = 1e-4
    cooldown: int = Field(0, ge=0)
    min_lr: float = Field(0.0, ge=0)


class TerminateOnNaNConfig(Arguments):
    raise_error: bool = False


CALLBACK_CONFIGS = {
    "EarlyStopping": EarlyStoppingConfig,
    "ReduceLROnPlateau": ReduceLROnPlateauConfig,
    "TerminateOnNaN": TerminateOnNaNConfig,
}


def _config(value: object) -> dict:
    if not value:
        return {}
    if not isinstance(value, dict):
        raise f.problem("{path} must be an object")
    return value


def callback_list(value: object) -> list:
    """``fit.callbacks``: a list (null: none); each item is a :class:`Callback`."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise f.problem(f"{{path}} must be a list, got {f.show(value)}")
    return value


class Callback(Section):
    """One of the allowed Keras callbacks and its constructor's arguments."""

    class_name: Annotated[
        Literal[CALLBACKS], check(f.one_of(CALLBACKS, "one of " + ", ".join(CALLBACKS)))
    ]
    config: Annotated[
        SkipValidation[EarlyStoppingConfig | ReduceLROnPlateauConfig | TerminateOnNaNConfig],
        check(_config),
    ] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _arguments(self) -> Callback:
        try:
            CALLBACK_CONFIGS[self.class_name].model_validate(self.config)
        except ValidationError as exc:
            first = exc.errors()[0]
            key = ".".join(str(p) for p in first["loc"])
            allowed = ", ".join(CALLBACK_CONFIGS[self.class_name].model_fields)
            text = (
                f"{self.class_name} takes no argument {key!r} (it takes: {allowed})"
                if first["type"] == "extra_forbidden"
                else f"{first['msg']}, got {f.show(first['input'])}"
            )
            raise f.problem(f"{{path}}.config.{key}: {text}", sub=f".config.{key}") from None
        return self
