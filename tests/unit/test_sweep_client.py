"""``client.sweep`` and ``fitfleet sweep`` against the API served in-process (no workers):
the sweep is submitted with its first trials queued, shown, listed and cancelled."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fitfleet import Client, Sweep
from fitfleet.cli import main

keras = pytest.importorskip("keras")
LR = "compile.optimizer.config.learning_rate"


@pytest.fixture
def api(served_api, monkeypatch):
    url, settings, token = served_api
    monkeypatch.setenv("FITFLEET_TOKEN", token)
    return url, settings, token


def model():
    m = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)]
    )
    m.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    return m


def test_client_sweep_of_a_compiled_model_on_arrays(api):
    url, _, token = api
    x, y = np.zeros((16, 4), "float32"), np.arange(16) % 3
    sweep = Client(url, token=token).sweep(
        model(),
        x=x,
        y=y,
        epochs=2,
        validation_split=0.25,
        space={LR: (1e-4, 1e-1), "fit.batch_size": [4, 8]},
        objective="val_loss",
        max_trials=3,
        max_parallel=2,
        sampler="random",
        seed=5,
    )
    assert isinstance(sweep, Sweep)
    assert sweep.state == "running"
    trials = sweep.trials
    assert [t["number"] for t in trials] == [0, 1]
    assert sweep.last["space"][LR]["log"] is True
    assert all(t["params"]["fit.batch_size"] in (4, 8) for t in trials)
    assert sweep.best is None
    with pytest.raises(LookupError):
        sweep.best_run()
    try:
        import pandas  # noqa: F401
    except ModuleNotFoundError:
        with pytest.raises(ModuleNotFoundError, match="pip install pandas"):
            sweep.trials_dataframe()
    else:
        frame = sweep.trials_dataframe()
        assert list(frame["number"]) == [0, 1]
        assert f"params.{LR}" in frame.columns
    assert sweep.cancel()["state"] == "cancelled"
    assert sweep.wait(timeout=10, verbose=0)["trial_counts"]["cancelled"] == 2


def test_cli_sweep_submit_status_list_best_cancel(api, tmp_path, capsys):
    url, _, _ = api
    np.savez(tmp_path / "data.npz", x=np.zeros((16, 4), "float32"), y=np.arange(16) % 3)
    base = json.loads(model().to_json())
    spec = {
        "name": "cli-sweep",
        "base": {
            "model": base,
            "compile": {
                "optimizer": {"class_name": "Adam", "config": {"learning_rate": 0.01}},
                "loss": "sparse_categorical_crossentropy",
            },
            "data": {"train": "file://{examples}/data.npz"},
            "fit": {"epochs": 2},
        },
        "space": {LR: {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}},
        "objective": {"metric": "loss"},
        "max_trials": 4,
    }
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps(spec))
    capsys.readouterr()
    assert main(["sweep", str(path), "--api", url]) == 0
    sweep_id = capsys.readouterr().out.strip()
    assert main(["sweep", "status", sweep_id, "--once", "--api", url]) == 0
    table = capsys.readouterr().out
    assert f"sweep {sweep_id} cli-sweep: running" in table
    assert "TRIAL  STATE    LOSS  STEPS  LEARNING_RATE" in table
    assert main(["sweep", "list", "--api", url]) == 0
    assert sweep_id in capsys.readouterr().out
    assert main(["sweep", "best", sweep_id, "--api", url]) == 3
    assert "no succeeded trial yet" in capsys.readouterr().err
    assert main(["sweep", "cancel", sweep_id, "--api", url]) == 0
    assert capsys.readouterr().out.strip() == f"{sweep_id} cancelled"
    assert main(["sweep", "status", "--api", url]) == 2
    assert main(["sweep", "status", sweep_id, "--api", url, "--output", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "cancelled"
