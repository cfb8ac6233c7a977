"""The v1 API blueprints and what they share: the app's stores and query-string parsing."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, request

from service.core.config import Settings
from service.core.errors import BadRequest
from service.store.jobs import JobStore
from service.store.metrics import MetricStore


@dataclass(frozen=True)
class ApiContext:
    """What a request handler needs: the settings and the stores built from them."""

    settings: Settings
    jobs: JobStore
    metrics: MetricStore


def ctx() -> ApiContext:
    """The current app's context."""
    return current_app.extensions["fitfleet"]


def int_arg(name: str, default: int | None, lo: int, hi: int | None = None) -> int | None:
    """Query parameter ``name`` as an integer in [lo, hi]; BadRequest otherwise."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or value < lo or (hi is not None and value > hi):
        bounds = f"from {lo} to {hi}" if hi is not None else f">= {lo}"
        raise BadRequest(
            f"query parameter {name} must be an integer {bounds}, got {raw[:40]!r}",
            details={"parameter": name},
        )
    return value


def choice_arg(name: str, choices: tuple[str, ...], default: str | None) -> str | None:
    """Query parameter ``name`` as one of ``choices``; BadRequest otherwise."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if raw not in choices:
        raise BadRequest(
            f"query parameter {name} must be one of {', '.join(choices)}, got {raw[:40]!r}",
            details={"parameter": name},
        )
    return raw
