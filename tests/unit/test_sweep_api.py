"""Sweep submission through the API on SQLite: bad specs are 4xx naming the field, a good
one starts max_parallel trials as jobs of the caller's project, cancel stops the sweep."""

from __future__ import annotations

import copy

import pytest
from apihelpers import api_client, base_job_spec, make_settings, sequential_json

from service.store.tokens import TokenStore

LR = "compile.optimizer.config.learning_rate"
RATE = "model.config.layers[2].config.rate"  # the Dropout layer (layers[0] is the InputLayer)
UNITS = "model.config.layers[1].config.units"


@pytest.fixture(scope="module")
def models():
    return {"sequential": sequential_json()}


@pytest.fixture
def settings(tmp_path, sqlite_url):
    return make_settings(tmp_path, sqlite_url)


@pytest.fixture
def client(settings):
    return api_client(settings)


def sweep_spec(models, folder, **extra) -> dict:
    base = base_job_spec(models, folder)
    base["compile"]["optimizer"] = {"class_name": "Adam", "config": {"learning_rate": 0.01}}
    base["fit"]["validation_split"] = 0.25
    spec = {
        "name": "lr-sweep",
        "base": base,
        "space": {
            LR: {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
            RATE: {"type": "float", "low": 0.0, "high": 0.5},
        },
        "objective": {"metric": "val_loss", "direction": "min"},
        "max_trials": 5,
        "max_parallel": 2,
    }
    spec.update(extra)
    return spec


def refused(client, spec, status=422) -> dict:
    answer = client.post("/api/v1/sweeps", json=spec)
    assert answer.status_code == status, answer.get_json()
    return answer.get_json()["error"]


def test_a_sweep_starts_max_parallel_trials_as_jobs(client, models, tmp_path):
    answer = client.post("/api/v1/sweeps", json=sweep_spec(models, tmp_path))
    assert answer.status_code == 201, answer.get_json()
    sweep = answer.get_json()
    assert answer.headers["Location"].endswith(f"/api/v1/sweeps/{sweep['id']}")
    assert sweep["state"] == "running"
    assert [t["number"] for t in sweep["trials"]] == [0, 1]
    assert sweep["trial_counts"]["running"] == 2
    for trial in sweep["trials"]:
        job = client.get(f"/api/v1/jobs/{trial['job_id']}").get_json()
        assert job["state"] == "queued"
        assert job["name"] == f"lr-sweep-trial-{trial['number']}"
        lr = job["spec"]["compile"]["optimizer"]["config"]["learning_rate"]
        assert lr == trial["params"][LR]
        assert 1e-4 <= lr <= 1e-1
        assert (
            job["spec"]["model"]["config"]["layers"][2]["config"]["rate"] == trial["params"][RATE]
        )
    listed = client.get("/api/v1/sweeps").get_json()["sweeps"]
    assert [s["id"] for s in listed] == [sweep["id"]]
    assert client.get(f"/api/v1/sweeps/{sweep['id']}").get_json()["trials"] == sweep["trials"]


def test_the_same_seed_samples_the_same_trials(client, models, tmp_path):
    spec = sweep_spec(models, tmp_path, sampler={"name": "random"}, seed=11)
    a = client.post("/api/v1/sweeps", json=spec).get_json()
    b = client.post("/api/v1/sweeps", json=spec).get_json()
    c = client.post("/api/v1/sweeps", json={**spec, "seed": 12}).get_json()
    assert [t["params"] for t in a["trials"]] == [t["params"] for t in b["trials"]]
    assert [t["params"] for t in a["trials"]] != [t["params"] for t in c["trials"]]


def test_cancel_cancels_queued_trials_and_starts_no_more(client, models, tmp_path):
    sweep = client.post("/api/v1/sweeps", json=sweep_spec(models, tmp_path)).get_json()
    answer = client.post(f"/api/v1/sweeps/{sweep['id']}/cancel")
    assert answer.status_code == 202
    done = answer.get_json()
    assert done["state"] == "cancelled"
    assert [t["state"] for t in done["trials"]] == ["cancelled", "cancelled"]
    for trial in done["trials"]:
        assert client.get(f"/api/v1/jobs/{trial['job_id']}").get_json()["state"] == "cancelled"
    assert client.post(f"/api/v1/sweeps/{sweep['id']}/cancel").status_code == 409


def test_another_projects_sweep_is_not_found(client, settings, models, tmp_path):
    sweep = client.post("/api/v1/sweeps", json=sweep_spec(models, tmp_path)).get_json()
    other = TokenStore(settings.database_url).create("elsewhere")[1]
    headers = {"Authorization": f"Bearer {other}"}
    assert client.get(f"/api/v1/sweeps/{sweep['id']}", headers=headers).status_code == 404
    assert client.post(f"/api/v1/sweeps/{sweep['id']}/cancel", headers=headers).status_code == 404
    assert client.get("/api/v1/sweeps", headers=headers).get_json()["sweeps"] == []
    assert client.get("/api/v1/sweeps/not-an-id").status_code == 404


def test_an_unknown_path_is_refused_naming_it(client, models, tmp_path):
    spec = sweep_spec(models, tmp_path)
    spec["space"]["model.config.layers[7].config.rate"] = {"type": "float", "low": 0, "high": 1}
    error = refused(client, spec)
    assert error["details"]["field"] == "space.model.config.layers[7].config.rate"
    assert "model.config.layers[7]" in error["message"]
    assert "does not exist in the base job spec" in error["message"]


def test_an_empty_range_is_refused(client, models, tmp_path):
    spec = sweep_spec(models, tmp_path)
    spec["space"][LR] = {"type": "float", "low": 0.1, "high": 0.01}
    error = refused(client, spec)
    assert "empty range" in error["message"]
    assert error["details"]["field"].startswith(f"space.{LR}")
    spec["space"][LR] = {"type": "categorical", "choices": []}
    assert "empty range" in refused(client, spec)["message"]


def test_an_objective_the_logs_never_hold_is_refused(client, models, tmp_path):
    error = refused(client, sweep_spec(models, tmp_path, objective={"metric": "val_auc"}))
    assert error["details"]["field"] == "objective.metric"
    assert "val_accuracy" in error["message"]


def test_max_parallel_zero_is_refused(client, models, tmp_path):
    error = refused(client, sweep_spec(models, tmp_path, max_parallel=0))
    assert error["details"]["field"] == "max_parallel"


def test_a_range_that_makes_an_invalid_model_is_refused(client, models, tmp_path):
    spec = sweep_spec(models, tmp_path)
    spec["space"] = {UNITS: {"type": "int", "low": -4, "high": 16, "step": 4}}
    error = refused(client, spec)
    assert error["details"]["field"] == f"space.{UNITS}"
    assert error["details"]["value"] == -4
    assert "refused" in error["message"]


def test_a_base_spec_that_is_refused_names_the_base(client, models, tmp_path):
    spec = sweep_spec(models, tmp_path)
    spec["base"] = copy.deepcopy(spec["base"])
    spec["base"]["fit"]["epochs"] = 0
    error = refused(client, spec)
    assert error["details"]["field"].startswith("base.fit.epochs")
