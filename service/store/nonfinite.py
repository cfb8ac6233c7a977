"""NaN and +/-inf in metric values: one JSON form for every database and every answer.

JSON has no NaN or infinity, and PostgreSQL's JSON type refuses Python's ``NaN`` token, so
a non-finite float is stored and served as one of the strings ``"NaN"``, ``"Infinity"``
and ``"-Infinity"`` (the names JavaScript's ``Number()`` and Python's ``float()`` read
back). Ordering, for downsampling: ``-Infinity`` < every number < ``Infinity`` < ``NaN``.
"""

from __future__ import annotations

import math

NAMES = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def encode(value):
    """``value`` with a non-finite float replaced by its string; anything else as it is."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


def encode_logs(logs: dict | None) -> dict:
    """A logs dict whose values are numbers or the three strings (JSON-safe everywhere)."""
    return {k: encode(v) for k, v in (logs or {}).items()}


def number(value) -> float | None:
    """The float a stored value stands for (None if it is not a metric value)."""
    if isinstance(value, str):
        return NAMES.get(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def order_key(value: float) -> tuple[int, float]:
    """Sort key: -inf < finite < inf < NaN (PostgreSQL's and NumPy's order of floats)."""
    return (1, 0.0) if math.isnan(value) else (0, value)
