"""The search, by Optuna: a study rebuilt in memory from fitfleet's rows for each decision.

fitfleet's tables are the one record (trials with their parameters, state and objective;
the pruner's decisions with each epoch's value); Optuna never stores anything, so nothing
collides with fitfleet's tables or Alembic, and every process that rebuilds the study from
the same rows sees the same state. The sampler is seeded from the sweep's seed and the
trial's number, so a sweep's trials are reproducible; a pruning decision is made once and
recorded (:mod:`service.sweeps.pruning`).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState

optuna.logging.set_verbosity(optuna.logging.WARNING)

_STATES = {
    "succeeded": TrialState.COMPLETE,
    "pruned": TrialState.PRUNED,
    "running": TrialState.RUNNING,
    "failed": TrialState.FAIL,
    "cancelled": TrialState.FAIL,
}


@dataclass
class TrialRecord:
    """A trial as the search sees it: params, state, objective and its epochs' values
    (Optuna steps: epochs trained, counted from 1) with what the pruner noted on it."""

    number: int
    params: dict
    state: str
    objective: float | None = None
    values: dict[int, float] = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)


def distributions(space: dict) -> dict[str, BaseDistribution]:
    """Optuna's distribution for each path of the space."""
    out: dict[str, BaseDistribution] = {}
    for path, dim in space.items():
        if dim["type"] == "float":
            out[path] = FloatDistribution(dim["low"], dim["high"], log=dim["log"], step=dim["step"])
        elif dim["type"] == "int":
            out[path] = IntDistribution(dim["low"], dim["high"], log=dim["log"], step=dim["step"])
        else:
            out[path] = CategoricalDistribution(dim["choices"])
    return out


def sampler_seed(seed: int, number: int) -> int:
    """The sampler's seed for trial ``number`` (hashed: nearby seeds of NumPy's generator
    give correlated first draws)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{number}".encode()).digest()[:4], "big")


def _sampler(sweep: dict, number: int):
    conf, seed = sweep["sampler"], sampler_seed(sweep["seed"], number)
    if conf["name"] == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=conf["n_startup_trials"])


def pruner_of(sweep: dict) -> optuna.pruners.BasePruner:
    conf = sweep["pruner"]
    name = conf["name"]
    if name == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=conf["n_startup_trials"], n_warmup_steps=conf["n_warmup_steps"]
        )
    if name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=conf["min_resource"],
            reduction_factor=conf["reduction_factor"],
            bootstrap_count=conf["bootstrap_count"],
        )
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=conf["min_resource"],
            max_resource=max(conf["min_resource"], int(sweep["base"]["fit"].get("epochs", 1))),
            reduction_factor=conf["reduction_factor"],
            bootstrap_count=conf["bootstrap_count"],
        )
    return optuna.pruners.NopPruner()


def _study(sweep_id: str, sweep: dict, trials: list[TrialRecord], sampler=None):
    direction = "minimize" if sweep["objective"]["direction"] == "min" else "maximize"
    study = optuna.create_study(
        study_name=sweep_id,
        direction=direction,
        sampler=sampler or optuna.samplers.RandomSampler(seed=0),
        pruner=pruner_of(sweep),
    )
    dists = distributions(sweep["space"])
    for t in sorted(trials, key=lambda t: t.number):
        state = _STATES.get(t.state, TrialState.FAIL)
        value = t.objective
        if state == TrialState.COMPLETE and (value is None or math.isnan(value)):
            state = TrialState.FAIL
        study.add_trial(
            optuna.trial.create_trial(
                state=state,
                value=value if state == TrialState.COMPLETE else None,
                params={p: t.params[p] for p in dists if p in t.params},
                distributions={p: d for p, d in dists.items() if p in t.params},
                system_attrs=dict(t.attrs),
                intermediate_values=dict(t.values),
            )
        )
    return study


def ask(sweep_id: str, sweep: dict, trials: list[TrialRecord], number: int) -> dict:
    """The parameters of trial ``number``, sampled given the trials so far."""
    study = _study(sweep_id, sweep, trials, _sampler(sweep, number))
    trial = study.ask(distributions(sweep["space"]))
    return dict(trial.params)


def prune(
    sweep_id: str, sweep: dict, trials: list[TrialRecord], number: int, step: int, value: float
) -> tuple[bool, dict]:
    """Whether trial ``number`` is pruned after ``step`` epochs with ``value``, and what the
    pruner noted on the trial while deciding (to be recorded with the decision)."""
    mine = next(t for t in trials if t.number == number)
    mine.values = {**mine.values, step: value}
    mine.state = "running"
    study = _study(sweep_id, sweep, trials)
    frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
    before = dict(frozen.system_attrs)
    verdict = bool(study.pruner.prune(study, frozen))
    after = study._storage.get_trial(frozen._trial_id).system_attrs
    noted = {k: v for k, v in after.items() if before.get(k) != v}
    return verdict, noted
