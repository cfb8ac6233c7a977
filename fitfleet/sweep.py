"""Sweeps from Python: ``client.sweep(model, space=..., objective=...)`` and its handle.

Each trial is a job of the base spec with sampled values at the space's paths; the
handle polls the API (``GET /api/v1/sweeps/{id}``) and reads the best trial's model like
any job's.
"""

from __future__ import annotations

import copy
import sys
import time

from fitfleet.run import Run

SETTLED = ("finished", "cancelled")


class Sweep:
    """A submitted sweep: its trials, the best so far, and waiting for the end.

    Example:
        >>> sweep = client.sweep(model, x="s3://b/train.npz", epochs=5, max_trials=8,
        ...     space={"compile.optimizer.config.learning_rate":
        ...            {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}},
        ...     objective="val_loss")
        >>> sweep.wait()
        >>> sweep.best["params"], sweep.load_best_model()
    """

    def __init__(self, client, sweep_id: str, sweep: dict | None = None):
        self.client, self.id = client, sweep_id
        self.last = sweep or {}

    def __repr__(self) -> str:
        return f"Sweep({self.id!r}, state={self.last.get('state')!r})"

    def refresh(self) -> dict:
        """The sweep as the API has it now (trials, counts, best)."""
        self.last = self.client._json("GET", f"/sweeps/{self.id}")
        return self.last

    @property
    def state(self) -> str:
        return self.refresh()["state"]

    @property
    def trials(self) -> list[dict]:
        return self.refresh()["trials"]

    @property
    def best(self) -> dict | None:
        """The succeeded trial with the best objective so far (its params, objective, job)."""
        return self.refresh()["best"]

    def cancel(self) -> dict:
        """Start no more trials and cancel the running ones."""
        self.last = self.client._json("POST", f"/sweeps/{self.id}/cancel")
        return self.last

    def wait(self, timeout: float | None = None, interval: float = 2.0, verbose: int = 1) -> dict:
        """Poll until the sweep has ended and every trial settled; prints each trial as it
        ends (``verbose=0``: silent). Returns the sweep; TimeoutError past ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        shown: set[int] = set()
        while True:
            sweep = self.refresh()
            for t in sweep.get("trials", []):
                if verbose and t["state"] != "running" and t["number"] not in shown:
                    shown.add(t["number"])
                    print(trial_line(t), file=sys.stdout, flush=True)
            if sweep["state"] in SETTLED and not sweep["trial_counts"]["running"]:
                return sweep
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"sweep {self.id} still {sweep['state']} after {timeout}s")
            time.sleep(interval)

    def best_run(self) -> Run:
        """The :class:`Run` of the best trial's job; LookupError if no trial succeeded."""
        best = self.best
        if best is None:
            raise LookupError(f"sweep {self.id} has no succeeded trial yet")
        return Run(self.client, best["job_id"])

    def load_best_model(self, compile: bool = True):
        """The best trial's trained model, loaded with ``keras.models.load_model``."""
        return self.best_run().load_model(compile=compile)

    def trials_dataframe(self):
        """The trials as a ``pandas.DataFrame``: number, state, objective, one column per
        path of the space (``params.<path>``), steps and job id. Needs pandas."""
        try:
            import pandas as pd
        except ModuleNotFoundError as exc:
            raise ModuleNotFoundError(
                "trials_dataframe needs pandas: pip install pandas (or use .trials, a list "
                "of dicts)",
                name="pandas",
            ) from exc
        rows = []
        for t in self.trials:
            row = {k: t.get(k) for k in ("number", "state", "objective", "pruned_epoch", "steps")}
            row.update({f"params.{p}": v for p, v in t["params"].items()})
            row["job_id"] = t.get("job_id")
            rows.append(row)
        return pd.DataFrame(rows)


def trial_line(t: dict) -> str:
    """One settled trial as a line: number, state, objective and parameters."""
    objective = "-" if t.get("objective") is None else f"{t['objective']:.6g}"
    state = t["state"] + (f" at epoch {t['pruned_epoch']}" if t.get("pruned_epoch") else "")
    params = ", ".join(f"{p}={_short(v)}" for p, v in t["params"].items())
    return f"trial {t['number']}: {state}, objective {objective} ({params})"


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def dimension(value) -> dict:
    """A space entry: a dict as it is, a list as categorical choices, a (low, high) tuple
    as a float or int range (a float range on a log scale when both ends are > 0 and
    span more than a factor of 10)."""
    if isinstance(value, dict):
        return value
    if isinstance(value, list):
        return {"type": "categorical", "choices": value}
    low, high = value
    if isinstance(low, int) and isinstance(high, int):
        return {"type": "int", "low": low, "high": high}
    log = low > 0 and high / low > 10
    return {"type": "float", "low": float(low), "high": float(high), "log": log}


class SweepMixin:
    """The sweep methods of :class:`fitfleet.client.Client`."""

    def sweep(
        self,
        model,
        *,
        space: dict,
        objective: str | dict,
        max_trials: int = 10,
        max_parallel: int = 1,
        sampler: str | dict = "tpe",
        pruner: str | dict = "none",
        seed: int = 0,
        name: str | None = None,
        **fit_arguments,
    ) -> Sweep:
        """Search ``space`` (path into the job spec: range) for the best ``objective``.

        ``model`` is a compiled Keras model (with ``fit_arguments`` as for :meth:`fit`:
        ``x``, ``y``, ``epochs``, ``batch_size``, ``validation_split``...) or a job spec
        dict. ``objective`` is a metric name (minimized; ``max:accuracy`` maximizes) or
        ``{"metric", "direction"}``. ``sampler``: ``tpe`` or ``random``; ``pruner``:
        ``none``, ``median``, ``successive_halving`` or ``hyperband`` (or a dict with its
        settings). Returns the sweep's handle.
        """
        base = model if isinstance(model, dict) else self._base_spec(model, fit_arguments)
        if isinstance(objective, str):
            direction, _, metric = objective.rpartition(":")
            objective = {"metric": metric, "direction": direction or "min"}
        spec = {
            "name": name or base.get("name") or "sweep",
            "base": base,
            "space": {path: dimension(v) for path, v in space.items()},
            "objective": objective,
            "sampler": sampler if isinstance(sampler, dict) else {"name": sampler},
            "pruner": pruner if isinstance(pruner, dict) else {"name": pruner},
            "max_trials": max_trials,
            "max_parallel": max_parallel,
            "seed": seed,
        }
        sweep = self._json("POST", "/sweeps", body=spec)
        return Sweep(self, sweep["id"], sweep)

    def _base_spec(self, model, fit_arguments: dict) -> dict:
        """The job spec :meth:`fit` would submit for these arguments (data uploaded), taken
        from a copy of this client whose ``submit`` keeps the spec instead of sending it."""
        made: list[dict] = []
        capture = copy.copy(self)
        capture.submit = lambda spec: made.append(spec) or Run(self, "", {})
        capture.fit(model, **{"verbose": 0, **fit_arguments})
        return made[0]

    def get_sweep(self, sweep_id: str) -> Sweep:
        """The handle of an existing sweep."""
        sweep = Sweep(self, sweep_id)
        sweep.refresh()
        return sweep

    def sweeps(self, state: str | None = None, limit: int = 50) -> list[dict]:
        """Sweeps, newest first."""
        return self._json("GET", "/sweeps", query={"state": state, "limit": limit})["sweeps"]
