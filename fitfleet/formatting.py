"""Keras-like text: places in training, metric values, step times, tables and the model summary."""

from __future__ import annotations


def position(step: int | None, steps_per_epoch: int | None, epochs: int | None = None) -> str:
    """A place in training as Keras numbers it, from the global steps done.

    ``step`` counts the batches done since the start (the API's 0-based fields aside):
    130 steps of 26 per epoch is the end of the fifth epoch, ``Epoch 5/5 26/26``.

    Example:
        >>> position(130, 26, 5)
        'Epoch 5/5 26/26 (step 130)'
        >>> position(27, 26, 5)
        'Epoch 2/5 1/26 (step 27)'
    """
    step = step or 0
    total = epochs or "?"
    if not steps_per_epoch:
        return f"Epoch ?/{total} (step {step})"
    epoch = max(1, -(-step // steps_per_epoch))  # the epoch the last step done belongs to
    batch = step - (epoch - 1) * steps_per_epoch
    return f"Epoch {epoch}/{total} {batch}/{steps_per_epoch} (step {step})"


def format_value(value: object, verbose: int = 1) -> str:
    """A metric value as Keras's Progbar prints it (4 decimals, or scientific when tiny).

    Keras's ``verbose=2`` line compares the signed value with 1e-3, ``verbose=1`` its size.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    size = abs(value) if verbose == 1 else value
    return f"{value:.4f}" if size > 1e-3 else f"{value:.4e}"


def format_logs(logs: dict | None, verbose: int = 1) -> str:
    """``accuracy: 0.8800 - loss: 0.4100 - val_...``: in the logs' own order, as Keras does."""
    return " - ".join(f"{k}: {format_value(v, verbose)}" for k, v in (logs or {}).items())


def format_time(seconds_per_step: float) -> str:
    """`` 66ms/step`` (Keras's unit: s, ms or us per step, with its leading space)."""
    t = seconds_per_step
    if t >= 1 or t == 0:
        return f" {t:.0f}s/step"
    if t >= 1e-3:
        return f" {t * 1000.0:.0f}ms/step"
    return f" {t * 1000000.0:.0f}us/step"


def format_eta(seconds: float) -> str:
    """Keras's time left: ``1:02:03``, ``2:03`` or ``45s``."""
    if seconds > 3600:
        return f"{seconds // 3600:.0f}:{(seconds % 3600) // 60:02.0f}:{seconds % 60 // 1:02.0f}"
    if seconds > 60:
        return f"{seconds // 60:.0f}:{seconds % 60 // 1:02.0f}"
    return f"{int(seconds)}s"


def format_progress(job: dict) -> str:
    """``Epoch 2/5 12/26 (step 38)`` from a job's progress, ``-`` while queued."""
    p = job.get("progress") or {}
    if not p.get("step") and job["state"] == "queued":
        return "-"
    return position(p.get("step"), p.get("steps_per_epoch"), p.get("epochs"))


def format_table(rows: list[tuple]) -> str:
    """Rows of cells as left-aligned columns, the first row being the header."""
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def format_summary(summary: dict) -> str:
    """A Keras-like summary table: Layer (type) | Output Shape | Param #, then the totals."""
    widths = (33, 26, 12)
    rule = "_" * sum(widths)
    out = [
        f'Model: "{summary.get("name") or "model"}"',
        rule,
        _cells(("Layer (type)", "Output Shape", "Param #"), widths),
        "=" * sum(widths),
    ]
    for layer in summary.get("layers") or []:
        kind = _pick(layer, "class_name", "class", "type") or "?"
        shape = _shape(_pick(layer, "output_shape", "shape"))
        params = _pick(layer, "params", "param_count", "count_params", "parameters") or 0
        out.append(_cells((f"{layer.get('name', '?')} ({kind})", shape, _num(params)), widths))
    out.append("=" * sum(widths))
    totals = summary.get("totals") or summary
    for label, keys in (
        ("Total params", ("total_params", "total")),
        ("Trainable params", ("trainable_params", "trainable")),
        ("Non-trainable params", ("non_trainable_params", "non_trainable")),
    ):
        value = _pick(totals, *keys)
        if value is not None:
            out.append(f"{label}: {_num(value)}")
    out.append(rule)
    return "\n".join(out)


def _num(value) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def _pick(d: dict, *keys):
    return next((d[k] for k in keys if d.get(k) is not None), None)


def _shape(shape) -> str:
    if isinstance(shape, list) and shape and all(isinstance(s, list) for s in shape):
        return ", ".join(_shape(s) for s in shape)
    if isinstance(shape, list):
        inner = ", ".join("None" if s is None else str(s) for s in shape)
        return f"({inner},)" if len(shape) == 1 else f"({inner})"
    return "?" if shape is None else str(shape)


def _cells(cells: tuple, widths: tuple) -> str:
    text = ""
    for cell, width in zip(cells, widths):
        text += " " + str(cell).ljust(width - 1)
    return text.rstrip()
