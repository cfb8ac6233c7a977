"""The sweep spec and its admission: a base job spec, a search space over paths into it,
an objective, a sampler, a pruner, ``max_trials`` and ``max_parallel``.

``admit(raw, settings)`` returns the normalized sweep spec or raises a 4xx naming the
field: a path the base spec lacks, an empty range, an objective the epoch logs never
hold, ``max_parallel`` 0, or a range whose extremes make a job spec that admission
refuses (the base itself passes the same admission as a job).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from service.admission import submit
from service.admission.spec import refusal
from service.core.config import Settings
from service.core.errors import BadRequest, FitfleetError, InvalidSpec
from service.sweeps import space

MAX_TRIALS = 1000
MAX_CHOICES = 50


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FloatRange(_Strict):
    """A float in [low, high]; ``log`` samples on a log scale, ``step`` on a grid."""

    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _check(self):
        _check_range(self.low, self.high, self.log)
        if self.log and self.step is not None:
            raise ValueError("a float range takes log or step, not both")
        return self


class IntRange(_Strict):
    """An integer in [low, high] in steps of ``step``; ``log`` samples on a log scale."""

    type: Literal["int"]
    low: int
    high: int
    step: int = Field(default=1, ge=1)
    log: bool = False

    @model_validator(mode="after")
    def _check(self):
        _check_range(self.low, self.high, self.log)
        if self.log and self.step != 1:
            raise ValueError("an int range on a log scale takes step 1")
        return self


class Categorical(_Strict):
    """One of ``choices`` (numbers, strings, booleans or null)."""

    type: Literal["categorical"]
    choices: list[bool | int | float | str | None] = Field(max_length=MAX_CHOICES)

    @model_validator(mode="after")
    def _check(self):
        if not self.choices:
            raise ValueError("empty range: choices is an empty list")
        return self


Dimension = Annotated[FloatRange | IntRange | Categorical, Field(discriminator="type")]


class Objective(_Strict):
    """The metric of the epoch logs to optimize (``val_loss``, ``accuracy``...)."""

    metric: str = Field(min_length=1, max_length=100)
    direction: Literal["min", "max"] = "min"


class Sampler(_Strict):
    """Optuna's TPE (``tpe``) or random (``random``) sampler, seeded by the sweep's seed."""

    name: Literal["tpe", "random"] = "tpe"
    n_startup_trials: int = Field(default=10, ge=0, le=MAX_TRIALS)


class Pruner(_Strict):
    """An Optuna pruner, deciding at each epoch end (one step an epoch, counted from 1)."""

    name: Literal["none", "median", "successive_halving", "hyperband"] = "none"
    min_resource: int = Field(default=1, ge=1)
    reduction_factor: int = Field(default=3, ge=2)
    n_startup_trials: int = Field(default=5, ge=0)
    n_warmup_steps: int = Field(default=0, ge=0)
    bootstrap_count: int = Field(default=0, ge=0)


class SweepSpec(_Strict):
    """A hyperparameter search whose trials are jobs of the base spec with sampled values."""

    name: str = Field(default="sweep", max_length=200)
    base: dict[str, Any]
    space: dict[str, Dimension] = Field(min_length=1, max_length=20)
    objective: Objective
    sampler: Sampler = Sampler()
    pruner: Pruner = Pruner()
    max_trials: int = Field(ge=1, le=MAX_TRIALS)
    max_parallel: int = Field(default=1, ge=1, le=100)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)


def _check_range(low, high, log) -> None:
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError("low and high must be finite numbers")
    if low > high:
        raise ValueError(f"empty range: low {low} is above high {high}")
    if log and low <= 0:
        raise ValueError(f"a log-scale range needs low > 0, got {low}")


def admit(raw: object, settings: Settings) -> dict:
    """The normalized sweep spec (its base normalized as a job's); raises a 4xx otherwise."""
    if not isinstance(raw, dict):
        raise BadRequest("the sweep spec must be a JSON object", code="bad_spec")
    try:
        sweep = SweepSpec.model_validate(raw).model_dump(mode="json")
    except ValidationError as exc:
        raise refusal(exc) from None
    base = sweep["base"]
    for path in sweep["space"]:
        space.get(base, path)
    try:
        normalized, _ = submit.admit(base, settings)
    except FitfleetError as exc:
        raise _in("base", exc) from None
    _check_objective(sweep["objective"]["metric"], normalized)
    for path, dim in sweep["space"].items():
        for value in extremes(dim):
            try:
                submit.admit(space.with_values(base, {path: value}), settings)
            except FitfleetError as exc:
                raise InvalidSpec(
                    f"space.{path}: the value {value!r} makes a job spec that is refused: "
                    f"{exc.message}",
                    details={"field": f"space.{path}", "path": path, "value": value},
                ) from None
    return sweep


def extremes(dim: dict) -> list:
    """The values that bound a dimension: its low and high, or each of its choices."""
    if dim["type"] == "categorical":
        return list(dim["choices"])
    return [dim["low"]] if dim["low"] == dim["high"] else [dim["low"], dim["high"]]


def log_names(spec: dict) -> list[str]:
    """The metric names the epoch logs of ``spec``'s job hold (``loss``, ``val_accuracy``...)."""
    comp = spec.get("compile") or {}
    names = ["loss"]
    loss = comp.get("loss")
    if isinstance(loss, dict):
        names += [f"{out}_loss" for out in loss]
    metrics = comp.get("metrics") or []
    if isinstance(metrics, dict):
        for out, ms in metrics.items():
            names += [f"{out}_{_metric_name(m)}" for m in (ms if isinstance(ms, list) else [ms])]
    else:
        names += [_metric_name(m) for m in metrics]
    fit, data = spec.get("fit") or {}, spec.get("data") or {}
    if fit.get("validation_split") or data.get("validation"):
        names += [f"val_{n}" for n in names]
    return names


def _metric_name(metric) -> str:
    if isinstance(metric, str):
        return metric
    if isinstance(metric, dict):
        config = metric.get("config") or {}
        if config.get("name"):
            return str(config["name"])
        cls = str(metric.get("class_name", ""))
        return "".join(f"_{c.lower()}" if c.isupper() else c for c in cls).lstrip("_")
    return str(metric)


def _check_objective(metric: str, normalized: dict) -> None:
    names = log_names(normalized)
    if metric not in names:
        raise InvalidSpec(
            f"objective.metric {metric!r} is not in the epoch logs of the base job spec, "
            f"which hold: {', '.join(names)}",
            details={"field": "objective.metric", "available": names},
        )


def _in(section: str, exc: FitfleetError) -> FitfleetError:
    """``exc`` with its field under ``section`` of the sweep spec."""
    details = dict(exc.details) if isinstance(exc.details, dict) else {}
    if "field" in details:
        details["field"] = f"{section}.{details['field']}"
    for problem in details.get("problems") or []:
        problem["field"] = f"{section}.{problem['field']}"
    out = type(exc)(f"{section}: {exc.message}", details=details or exc.details, code=exc.code)
    return out
