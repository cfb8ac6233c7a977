"""Sweep specs and helpers that tests and benchmarks share: a small MLP over a learning
rate and a dropout rate, and waiting for a sweep through the API of a :class:`Stack`."""

from __future__ import annotations

from testbed.specs import mlp_spec
from testbed.stack import wait_for

LR = "compile.optimizer.config.learning_rate"
DROPOUT = "model.config.layers[2].config.rate"  # layers[0] is the InputLayer
SPACE = {
    LR: {"type": "float", "low": 1e-4, "high": 0.1, "log": True},
    DROPOUT: {"type": "float", "low": 0.0, "high": 0.6},
}


def sweep_spec(data_url: str, *, epochs: int = 2, pruner: str = "none", **extra) -> dict:
    """A sweep of :func:`testbed.specs.mlp_spec` minimizing ``val_loss``."""
    base_kw = {
        k: extra.pop(k) for k in ("batch_size", "features", "hidden", "checkpoint") if k in extra
    }
    spec = {
        "name": "tiny-sweep",
        "base": mlp_spec(data_url, epochs=epochs, **base_kw),
        "space": dict(SPACE),
        "objective": {"metric": "val_loss", "direction": "min"},
        "pruner": {"name": pruner, "reduction_factor": 2, "n_startup_trials": 2},
        "max_trials": 8,
        "max_parallel": 2,
        "seed": 3,
    }
    spec.update(extra)
    return spec


def submit(stack, spec) -> dict:
    status, sweep = stack.http("POST", "/api/v1/sweeps", spec)
    if status != 201:
        raise AssertionError(f"POST /sweeps answered {status}: {sweep!r}")
    return sweep


def get(stack, sweep_id: str) -> dict:
    status, sweep = stack.http("GET", f"/api/v1/sweeps/{sweep_id}")
    if status != 200:
        raise AssertionError(f"GET sweep {sweep_id} answered {status}: {sweep!r}")
    return sweep


def wait_ended(stack, sweep_id: str, timeout: float = 300.0) -> dict:
    """Poll until the sweep is no longer running and every trial has settled."""

    def ended():
        sweep = get(stack, sweep_id)
        settled = sweep["state"] != "running" and not sweep["trial_counts"]["running"]
        return sweep if settled else None

    return wait_for(ended, timeout, 0.5, f"sweep {sweep_id} ended")
