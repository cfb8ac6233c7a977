"""Field checks of the job spec models (:mod:`service.admission.specmodel`).

Each check takes the value as sent and returns it normalized, or raises a
:func:`problem` whose text says what is wrong; ``{path}`` in the text stands for the
field's path (``fit.callbacks[0].class_name``), which pydantic knows from where it failed.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import ClassVar
from urllib.parse import urlparse

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError

KERAS_OBJECT_KEYS = ("class_name", "config", "module", "registered_name")


def show(value: object, limit: int = 80) -> str:
    """A short JSON rendering of a client's value for an error message."""
    try:
        text = json.dumps(value, allow_nan=True, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def problem(text: str, **ctx: object) -> PydanticCustomError:
    """A validation problem; ``{path}`` in ``text`` becomes the field's path."""
    return PydanticCustomError("invalid_spec", "{text}", {"text": text, **ctx})


def integer(lo: int, hi: int | None = None, default: int | None = None) -> Callable:
    """A check for an integer in [lo, hi]; null becomes ``default``."""

    def check(value: object) -> int | None:
        return bounded_int(value, lo, hi, default)

    return check


def bounded_int(value: object, lo: int, hi: int | None, default: int | None) -> int | None:
    """``value`` as an integer in [lo, hi] (2.0 counts as 2); ``default`` when null."""
    if value is None:
        return default
    if hi is not None and hi < 1000:
        kind = f"an integer from {lo} to {hi}"
    else:
        kind = {0: "a non-negative integer", 1: "a positive integer"}.get(lo, f"an integer >= {lo}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise problem(f"{{path}} must be {kind}, got {show(value)}")
    if hi is not None and value > hi:
        bound = kind if hi < 1000 else f"at most {hi}"
        raise problem(f"{{path}} must be {bound}, got {show(value)}")
    return value


def boolean(default: bool) -> Callable:
    """A check for a JSON boolean; null becomes ``default``."""

    def check(value: object) -> bool:
        if value is None:
            return default
        if not isinstance(value, bool):
            raise problem(f"{{path}} must be true or false, got {show(value)}")
        return value

    return check


def number(lo: float | None = None, optional: bool = False) -> Callable:
    """A check for a finite JSON number, at least ``lo``; null allowed if ``optional``."""

    def check(value: object) -> float | None:
        if value is None and optional:
            return None
        return finite(value, lo)

    return check


def finite(value: object, lo: float | None = None) -> float:
    """``value`` as a finite float, at least ``lo``."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or (lo is not None and value < lo):
        bound = f" >= {lo:g}" if lo is not None else ""
        raise problem(f"{{path}} must be a number{bound}, got {show(value)}")
    return float(value)


def one_of(choices: tuple, text: str) -> Callable:
    """A check that the value is one of ``choices``; ``text`` lists them for the message."""

    def check(value: object) -> object:
        if value not in choices:
            raise problem(f"{{path}} must be {text}, got {show(value)}")
        return value

    return check


def data_url(value: object) -> str:
    """A data location: ``s3://bucket/key`` or ``file:///absolute/path``; ``/`` at the end
    names a prefix (a folder) of shards."""
    ok = False
    if isinstance(value, str) and not any(c.isspace() for c in value):
        u = urlparse(value)
        plain = not (u.query or u.fragment or u.params)
        if u.scheme == "s3":
            ok = plain and bool(u.netloc) and bool(u.path.lstrip("/")) and "@" not in u.netloc
        elif u.scheme == "file":
            ok = plain and u.netloc == "" and u.path.startswith("/") and u.path != "/"
    if not ok:
        raise problem(
            f"{{path}} must be an s3://bucket/key or file:///absolute/path URL, got {show(value)}"
        )
    return value


def names(value: object) -> str | list[str]:
    """An array name, or a non-empty list of them (one per model input or output)."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return list(value)
    raise problem(f"{{path}} must be a name or a non-empty list of names, got {show(value)}")


def names_by_output(value: object) -> str | list[str] | dict[str, str]:
    """:func:`names`, or an object of output name to array name (as Keras matches a dict
    of targets by output name)."""
    if isinstance(value, dict) and value:
        for key, name in value.items():
            if not key or not isinstance(name, str) or not name:
                raise problem(
                    f"{{path}}.{key} must be an array name, got {show(name)}", sub=f".{key}"
                )
        return dict(value)
    if isinstance(value, dict):
        raise problem("{path} must not be an empty object")
    return names(value)


def sample_weight_names(value: object) -> str | list[str] | dict[str, str] | None:
    """``data.sample_weight``: an array or column name, a list (one per output, in order),
    or an object of output name to name."""
    if value is None:
        return None
    if (
        isinstance(value, dict)
        and value
        and all(isinstance(k, str) and k and isinstance(v, str) and v for k, v in value.items())
    ):
        return dict(value)
    if isinstance(value, dict) or not isinstance(value, (str, list)):
        raise problem(
            "{path} must be an array or column name, a list of them (one per "
            f"output) or an object of output name to name, got {show(value)}"
        )
    return names(value)


def keras_object(value: object) -> str | dict:
    """A Keras identifier: a name string or a ``{"class_name", "config"}`` object."""
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, dict):
        unknown = sorted(str(k) for k in value if k not in KERAS_OBJECT_KEYS)
        if unknown:
            raise problem(
                f"unknown key in {{path}}: {', '.join(unknown)}; "
                f"allowed: {', '.join(KERAS_OBJECT_KEYS)}"
            )
        if not isinstance(value.get("class_name"), str) or not value["class_name"]:
            raise problem("{path}.class_name must be a non-empty string")
        config = value.get("config", {})
        if config is None:
            config = {}
        if not isinstance(config, dict):
            raise problem(f"{{path}}.config must be an object, got {show(config)}")
        return {**value, "config": config}
    raise problem(
        f'{{path}} must be a name or a {{"class_name", "config"}} object, got {show(value)}'
    )


def per_output(value: object, allow_list: bool = True) -> object:
    """A Keras loss or metric form, a list of them, or a dict of output name to one."""
    if isinstance(value, list) and allow_list:
        return [_item(per_output, v, f"[{i}]", False) for i, v in enumerate(value)]
    if isinstance(value, dict) and "class_name" not in value:
        return {str(k): _item(per_output, v, f".{k}") for k, v in value.items()}
    return keras_object(value)


def metrics(value: object) -> list | dict:
    """``compile.metrics``: a list of Keras metric forms, or a dict of output name to them."""
    if value is None:
        return []
    if not isinstance(value, (list, dict)):
        raise problem(f"{{path}} must be a list, got {show(value)}")
    return per_output(value)


def loss_weights(value: object) -> list | dict | None:
    """``compile.loss_weights``: null, a list of weights, or an object of output to weight."""
    if value is None:
        return None
    if isinstance(value, list):
        return [_item(finite, v, f"[{i}]", 0.0) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {str(k): _item(finite, v, f".{k}", 0.0) for k, v in value.items()}
    raise problem(f"{{path}} must be null, a list or an object, got {show(value)}")


def class_weight(value: object) -> dict | None:
    """``fit.class_weight``: null or an object of class index (as a string) to weight."""
    if value is None:
        return None
    if not isinstance(value, dict) or not value:
        raise problem(
            f"{{path}} must be null or an object of class index to weight, got {show(value)}"
        )
    out = {}
    for key, weight in value.items():
        if not re.fullmatch(r"\d{1,9}", str(key)):
            raise problem(f"{{path}} keys must be class indices (0, 1, ...), got {show(key)}")
        out[str(int(key))] = _item(finite, weight, f".{key}", 0.0)
    return out


def _item(check: Callable, value: object, sub: str, *args: object) -> object:
    """``check(value)``, a problem's field narrowed by ``sub`` (``[0]``, ``.out``)."""
    try:
        return check(value, *args)
    except PydanticCustomError as exc:
        ctx = exc.context or {}
        raise problem(
            ctx["text"].replace("{path}", "{path}" + sub), sub=sub + ctx.get("sub", "")
        ) from None


def check(fn: Callable) -> BeforeValidator:
    """``fn`` as the check a field runs on the value as sent."""
    return BeforeValidator(fn)


class Section(BaseModel):
    """An object with only the keys its fields name; null counts as an empty object.

    ``{where}`` and ``{path}`` in a problem's text are filled in by the spec's refusal."""

    model_config = ConfigDict(extra="forbid")
    REQUIRED: ClassVar[dict[str, str]] = {}  # field -> message when absent or null

    @model_validator(mode="before")
    @classmethod
    def _object(cls, value: object, info: ValidationInfo) -> object:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise problem(f"{{where}} must be an object, got {show(value)}")
        unknown = sorted(str(k) for k in value if k not in cls.model_fields)
        if unknown:
            raise problem("unknown keys", unknown=unknown, allowed=list(cls.model_fields))
        for key, text in cls.REQUIRED.items():
            if value.get(key) is None:
                raise problem(text, sub=f".{key}")
        return cls._walk(value, info)

    @classmethod
    def _walk(cls, value: dict, info: ValidationInfo) -> dict:
        """A hook for a section's own checks of the object as sent."""
        return value
