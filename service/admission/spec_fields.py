"""Typed field checks for the job spec; each error names the field's path."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import TypeVar

from service.core.errors import InvalidSpec

T = TypeVar("T")
_MISSING = object()
KERAS_OBJECT_KEYS = ("class_name", "config", "module", "registered_name")


def show(value: object, limit: int = 80) -> str:
    """A short JSON rendering of a client's value for an error message."""
    try:
        text = json.dumps(value, allow_nan=True, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fail(path: str, message: str) -> InvalidSpec:
    return InvalidSpec(message, details={"field": path or "spec"})


def section(value: object, path: str, allowed: tuple[str, ...]) -> dict:
    """An object with only ``allowed`` keys (None counts as empty)."""
    if value is None:
        return {}
    where = path or "the job spec"
    if not isinstance(value, dict):
        raise _fail(path, f"{where} must be an object, got {show(value)}")
    unknown = sorted(str(k) for k in value if k not in allowed)
    if unknown:
        prefix = f"{path}." if path else ""
        names = ", ".join(prefix + k for k in unknown)
        raise InvalidSpec(f"unknown key{'s' if len(unknown) > 1 else ''} in {where}: {names}; "
                          f"allowed: {', '.join(allowed)}",
                          details={"field": path or "spec", "unknown": unknown})
    return value


def optional(value: T | None, check: Callable[[T], object]) -> object:
    """None stays None; anything else goes through ``check``."""
    return None if value is None else check(value)


def pick_int(sec: dict, key: str, path: str, default: int | None, lo: int,
             hi: int | None = None) -> int | None:
    """``sec[key]`` as an integer in [lo, hi]; ``default`` when absent or null."""
    value = sec.get(key, _MISSING)
    if value is _MISSING or value is None:
        return default
    if hi is not None and hi < 1000:
        kind = f"an integer from {lo} to {hi}"
    else:
        kind = {0: "a non-negative integer", 1: "a positive integer"}.get(lo, f"an integer >= {lo}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise _fail(path, f"{path} must be {kind}, got {show(value)}")
    if hi is not None and value > hi:
        bound = kind if hi < 1000 else f"at most {hi}"
        raise _fail(path, f"{path} must be {bound}, got {show(value)}")
    return value


def pick_bool(sec: dict, key: str, path: str, default: bool) -> bool:
    """``sec[key]`` as a JSON boolean; ``default`` when absent or null."""
    value = sec.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _fail(path, f"{path} must be true or false, got {show(value)}")
    return value


def number(value: object, path: str, lo: float | None = None) -> float:
    """A finite JSON number, at least ``lo``."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or (lo is not None and value < lo):
        bound = f" >= {lo:g}" if lo is not None else ""
        raise _fail(path, f"{path} must be a number{bound}, got {show(value)}")
    return float(value)


def str_or_names(value: object, path: str) -> str | list[str]:
    """An array name, or a non-empty list of them (one per model input or output)."""
    if isinstance(value, str) and value:
        return value
    if (isinstance(value, list) and value
            and all(isinstance(v, str) and v for v in value)):
        return list(value)
    raise _fail(path, f"{path} must be a name or a non-empty list of names, got {show(value)}")


def names_by_output(value: object, path: str) -> str | list[str] | dict[str, str]:
    """:func:`str_or_names`, or an object of output name to array name (as Keras matches
    a dict of targets by output name)."""
    if isinstance(value, dict) and value:
        for key, name in value.items():
            if not key or not isinstance(name, str) or not name:
                raise _fail(f"{path}.{key}", f"{path}.{key} must be an array name, "
                                             f"got {show(name)}")
        return dict(value)
    if isinstance(value, dict):
        raise _fail(path, f"{path} must not be an empty object")
    return str_or_names(value, path)


def keras_object(value: object, path: str) -> str | dict:
    """A Keras identifier: a name string or a ``{"class_name", "config"}`` object."""
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, dict):
        unknown = sorted(str(k) for k in value if k not in KERAS_OBJECT_KEYS)
        if unknown:
            raise _fail(path, f"unknown key in {path}: {', '.join(unknown)}; "
                              f"allowed: {', '.join(KERAS_OBJECT_KEYS)}")
        if not isinstance(value.get("class_name"), str) or not value["class_name"]:
            raise _fail(path, f"{path}.class_name must be a non-empty string")
        config = value.get("config", {})
        if config is None:
            config = {}
        if not isinstance(config, dict):
            raise _fail(path, f"{path}.config must be an object, got {show(config)}")
        return {**value, "config": config}
    raise _fail(path, f"{path} must be a name or a {{\"class_name\", \"config\"}} object, "
                      f"got {show(value)}")


def sample_weight_names(value: object, path: str) -> str | list[str] | dict[str, str]:
    """``data.sample_weight``: an array or column name, a list (one per output, in order),
    or an object of output name to name."""
    if isinstance(value, dict) and value and all(
            isinstance(k, str) and k and isinstance(v, str) and v for k, v in value.items()):
        return dict(value)
    if isinstance(value, dict) or not (isinstance(value, (str, list))):
        raise _fail(path, f"{path} must be an array or column name, a list of them (one per "
                          f"output) or an object of output name to name, got {show(value)}")
    return str_or_names(value, path)
