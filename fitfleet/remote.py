"""A compiled ``keras.Model`` and ``fit`` arguments as a fitfleet job spec (Keras only if given).

Example:
    >>> spec = to_spec(model, {"train": "s3://bucket/train.npz"}, epochs=5, batch_size=64,
    ...                callbacks=[keras.callbacks.EarlyStopping(patience=2)])
"""

from __future__ import annotations

import inspect
import json

# A copy of service.admission.allowed.CALLBACKS (the client may not import the server);
# tests/unit/test_allowed.py keeps the two equal.
CALLBACKS = ("EarlyStopping", "ReduceLROnPlateau", "TerminateOnNaN")


def model_config(model) -> dict:
    """``json.loads(model.to_json())``: the architecture, without weights."""
    return json.loads(model.to_json())


def compile_config(model) -> dict:
    """The spec's ``compile`` section from a compiled model, in Keras's own forms."""
    cfg = model.get_compile_config() if hasattr(model, "get_compile_config") else None
    if not cfg or cfg.get("loss") is None:
        raise ValueError("compile the model (with a loss) before fitting it remotely")
    if cfg.get("weighted_metrics"):
        raise ValueError("weighted_metrics are not supported by remote fit; use metrics")
    out = {
        "optimizer": cfg.get("optimizer") or "adam",
        "loss": cfg["loss"],
        "metrics": cfg.get("metrics") or [],
    }
    if cfg.get("loss_weights") is not None:
        out["loss_weights"] = cfg["loss_weights"]
    return _plain(out)


def callback_config(callback) -> dict:
    """``{"class_name", "config"}`` of a standard Keras callback, from its constructor's arguments.

    Keras callbacks have no ``get_config``; each argument is read back from the attribute
    of the same name, which is where these callbacks keep them.
    """
    name = type(callback).__name__
    if name not in CALLBACKS or not type(callback).__module__.startswith("keras"):
        raise ValueError(
            f"callback {name} cannot run remotely; use one of {', '.join(CALLBACKS)}"
            " (metrics, checkpoints and progress are recorded by fitfleet itself)"
        )
    params = inspect.signature(type(callback).__init__).parameters
    config = {
        p: getattr(callback, p)
        for p in params
        if p not in ("self", "kwargs", "args") and hasattr(callback, p)
    }
    return {"class_name": name, "config": _plain(config)}


def _plain(value):
    """JSON values only (NumPy scalars become Python numbers)."""
    return json.loads(
        json.dumps(value, default=lambda v: v.item() if hasattr(v, "item") else str(v))
    )


def to_spec(
    model,
    data: dict,
    *,
    epochs: int = 1,
    batch_size: int = 32,
    validation_split: float = 0.0,
    shuffle: bool = True,
    class_weight=None,
    callbacks=(),
    checkpoint_every: int | None = None,
    checkpoint: dict | None = None,
    seed: int = 0,
    name: str | None = None,
    **extra,
) -> dict:
    """A job spec (API.md) training ``model`` on ``data`` as ``model.fit`` would.

    Args:
        model: a compiled ``keras.Model`` (Sequential or Functional).
        data: the spec's ``data`` section (``train``, ``validation``, ``x``, ``y``, ``format``).
        checkpoint_every: a checkpoint every N batches (besides one per epoch).
        checkpoint: the spec's whole ``checkpoint`` section, when more is needed.
        extra: other top-level spec fields (``queue``, ``priority``, ``max_attempts`` ...).
    """
    fit = {
        "epochs": int(epochs),
        "batch_size": int(batch_size),
        "validation_split": float(validation_split),
        "shuffle": bool(shuffle),
        "callbacks": [callback_config(cb) for cb in callbacks or ()],
    }
    if class_weight:
        fit["class_weight"] = {str(int(k)): float(v) for k, v in class_weight.items()}
    ck = dict(checkpoint or {})
    if checkpoint_every:
        ck["every_n_batches"] = int(checkpoint_every)
    spec = {
        "name": name or model.name,
        "model": model_config(model),
        "compile": compile_config(model),
        "data": {k: v for k, v in data.items() if v is not None},
        "fit": fit,
        "checkpoint": ck,
        "seed": int(seed),
    }
    spec.update({k: v for k, v in extra.items() if v is not None})
    return spec


def verbosity(verbose) -> int:
    """``model.fit``'s ``verbose`` ("auto", 0, 1, 2) as the default of ``Run.wait``."""
    if verbose == "auto":
        return 1
    if verbose in (0, 1, 2) and not isinstance(verbose, bool):
        return int(verbose)
    raise ValueError(f'verbose must be "auto", 0, 1 or 2 as for model.fit, got {verbose!r}')


def refuse_fit_arguments(
    *,
    initial_epoch,
    steps_per_epoch,
    validation_steps,
    validation_freq,
    validation_batch_size,
    batch_size,
) -> None:
    """ValueError naming a ``model.fit`` argument whose meaning does not carry over."""
    why = {
        "initial_epoch": (
            initial_epoch != 0,
            "a job starts at epoch 0 and resumes from "
            + "its own checkpoints; leave initial_epoch=0",
        ),
        "steps_per_epoch": (
            steps_per_epoch is not None,
            "every epoch is one pass over the "
            + "data; leave steps_per_epoch=None and send the samples to train on",
        ),
        "validation_steps": (
            validation_steps is not None,
            "validation runs over all of " + "validation_data; leave validation_steps=None",
        ),
        "validation_freq": (
            validation_freq != 1,
            "validation runs after every epoch; leave validation_freq=1",
        ),
        "validation_batch_size": (
            validation_batch_size not in (None, batch_size),
            "validation uses batch_size; leave validation_batch_size=None",
        ),
    }
    for argument, (refused, message) in why.items():
        if refused:
            raise ValueError(f"Client.fit does not take {argument}: {message}")
