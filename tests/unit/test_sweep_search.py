"""The search rebuilt from rows decides as a live Optuna study does: the same verdicts, for
each pruner, on the same reports in the same order; the sampler is seeded per trial."""

from __future__ import annotations

import math

import optuna
import pytest

from service.sweeps import search
from service.sweeps.spec import Pruner, Sampler

SPACE = {"x": {"type": "float", "low": 0.0, "high": 1.0, "log": False, "step": None}}
CURVES = [  # each trial's objective after epochs 1..4 (minimized)
    [1.0, 0.8, 0.6, 0.5],
    [1.2, 1.1, 1.0, 0.9],
    [0.9, 0.7, 0.5, 0.4],
    [1.5, 1.4, 1.3, 1.2],
    [0.95, 0.75, 0.55, 0.3],
    [1.1, 0.6, 0.5, 0.45],
    [2.0, 1.9, 1.8, 1.7],
    [0.8, 0.85, 0.9, 0.95],
]


def sweep(pruner: str) -> dict:
    return {
        "space": SPACE,
        "objective": {"metric": "val_loss", "direction": "min"},
        "sampler": Sampler(name="random").model_dump(),
        "pruner": Pruner(name=pruner, reduction_factor=2, n_startup_trials=2).model_dump(),
        "seed": 1,
        "base": {"fit": {"epochs": 4}},
    }


def live_verdicts(spec: dict) -> list[list[bool]]:
    study = optuna.create_study(study_name="s", direction="minimize", pruner=search.pruner_of(spec))
    out = []
    for curve in CURVES:
        trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
        verdicts = []
        for step, value in enumerate(curve, start=1):
            trial.report(value, step)
            verdicts.append(step < len(curve) and trial.should_prune())
            if verdicts[-1]:
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                break
        else:
            study.tell(trial, curve[-1])
        out.append(verdicts)
    return out


def rebuilt_verdicts(spec: dict) -> list[list[bool]]:
    records: list[search.TrialRecord] = []
    out = []
    for number, curve in enumerate(CURVES):
        params = search.ask("s", spec, records, number)
        record = search.TrialRecord(number=number, params=params, state="running")
        records.append(record)
        verdicts = []
        for step, value in enumerate(curve, start=1):
            verdict, noted = (False, {})
            if step < len(curve):
                verdict, noted = search.prune("s", spec, records, number, step, value)
            record.values[step] = value
            record.attrs.update(noted)
            verdicts.append(verdict)
            if verdict:
                record.state = "pruned"
                break
        else:
            record.state, record.objective = "succeeded", curve[-1]
        out.append(verdicts)
    return out


@pytest.mark.parametrize("pruner", ["median", "successive_halving", "hyperband"])
def test_the_rebuilt_study_gives_a_live_studys_verdicts(pruner):
    spec = sweep(pruner)
    live, rebuilt = live_verdicts(spec), rebuilt_verdicts(spec)
    assert rebuilt == live
    if pruner != "hyperband":  # hyperband's brackets may keep every one of 8 trials
        assert any(any(v) for v in rebuilt)


def test_no_pruner_never_prunes():
    assert not any(any(v) for v in rebuilt_verdicts(sweep("none")))


def test_the_sampler_is_seeded_by_the_sweep_and_the_trial():
    spec = sweep("none")
    first = [search.ask("a", spec, [], n)["x"] for n in range(5)]
    assert first == [search.ask("b", spec, [], n)["x"] for n in range(5)]
    assert len(set(first)) == 5
    other = dict(spec, seed=2)
    assert first != [search.ask("a", other, [], n)["x"] for n in range(5)]
    assert all(0 <= x <= 1 and not math.isnan(x) for x in first)
