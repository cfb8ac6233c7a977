"""Size limits on a job spec: epochs, batch size, layer count and parameter count.

Each refusal is a 422 ``invalid_spec`` whose message and details name the limit and the
setting that raises it, so an operator knows what to change and a user what to shrink.
"""

from __future__ import annotations

import json

from service.core.config import Settings
from service.core.errors import InvalidSpec


def exceeded(field: str, what: str, value: int, limit: int, setting: str) -> InvalidSpec:
    """The error for ``value`` over ``limit``."""
    return InvalidSpec(
        f"{field}: {what} {value} is over the limit of {limit} ({setting})",
        details={"field": field, "limit": limit, "value": value, "setting": setting},
    )


def check_raw(raw: object, settings: Settings) -> None:
    """Limits checked on the spec as sent, before anything is built from it."""
    if not isinstance(raw, dict):
        return
    fit = raw.get("fit")
    if isinstance(fit, dict):
        _at_most(
            fit.get("epochs"), "fit.epochs", "epochs", settings.max_epochs, "FITFLEET_MAX_EPOCHS"
        )
        _at_most(
            fit.get("batch_size"),
            "fit.batch_size",
            "batch size",
            settings.max_batch_size,
            "FITFLEET_MAX_BATCH_SIZE",
        )
    model = raw.get("model")
    if isinstance(model, str):
        try:
            model = json.loads(model)
        except (ValueError, RecursionError):
            return  # the spec check explains what is wrong with it
    layers = count_layers(model)
    if layers > settings.max_layers:
        raise exceeded("model", "layer count", layers, settings.max_layers, "FITFLEET_MAX_LAYERS")


def check_summary(summary: dict, settings: Settings) -> None:
    """Limits that need the built model: its parameter count."""
    total = int(summary.get("total_params") or 0)
    if total > settings.max_params:
        raise exceeded(
            "model", "parameter count", total, settings.max_params, "FITFLEET_MAX_PARAMS"
        )


def count_layers(model: object) -> int:
    """Layers of a model config, nested models' layers and wrapped layers included."""
    count, stack = 0, [model]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            layers = node.get("layers")
            if isinstance(layers, list):
                count += sum(1 for item in layers if isinstance(item, dict))
            wrapped = node.get("layer")
            if isinstance(wrapped, dict) and "class_name" in wrapped:
                count += 1
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return count


def _at_most(value: object, field: str, what: str, limit: int, setting: str) -> None:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value > limit:
        raise exceeded(field, what, value, limit, setting)
