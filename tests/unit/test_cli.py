"""The ``fitfleet`` command line against the real API served in-process on a loopback port."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fitfleet.cli import main
from fitfleet.formatting import format_summary

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def api(served_api, monkeypatch):
    """The API URL and settings; the commands find an admin token in FITFLEET_TOKEN."""
    url, settings, token = served_api
    monkeypatch.setenv("FITFLEET_TOKEN", token)
    return url, settings


@pytest.fixture
def spec_file(model_json, tmp_path):
    """A job spec file whose data URL uses the ``{examples}`` placeholder."""
    import numpy as np

    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "data.npz",
        x=rng.normal(size=(32, 4)).astype("float32"),
        y=rng.integers(0, 3, 32),
    )
    spec = {
        "name": "cli-tiny",
        "model": model_json,
        "compile": {"optimizer": "adam", "loss": "sparse_categorical_crossentropy"},
        "data": {"train": "file://{examples}/data.npz"},
        "fit": {"epochs": 2},
    }
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    return path


def _json(capsys, argv: list[str], code: int = 0):
    capsys.readouterr()
    assert main(argv) == code
    return json.loads(capsys.readouterr().out)


def test_submit_status_list_cancel(api, spec_file, tmp_path, capsys):
    url, _ = api
    opts = ["--api", url, "--output", "json"]
    job = _json(capsys, ["submit", str(spec_file), *opts])
    assert job["state"] == "queued"
    assert job["spec"]["data"]["train"] == (tmp_path / "data.npz").as_uri()
    assert _json(capsys, ["status", job["id"], *opts])["name"] == "cli-tiny"
    assert [j["id"] for j in _json(capsys, ["list", *opts])["jobs"]] == [job["id"]]
    assert _json(capsys, ["list", "--state", "running", *opts])["jobs"] == []
    assert _json(capsys, ["cancel", job["id"], *opts])["state"] == "cancelled"
    assert _json(capsys, ["status", job["id"], *opts], code=3)["state"] == "cancelled"
    assert main(["cancel", job["id"], "--api", url]) == 1
    assert capsys.readouterr().err.startswith("error: conflict: ")


def test_text_output(api, spec_file, capsys):
    url, _ = api
    assert main(["submit", str(spec_file), "--api", url]) == 0
    job_id = capsys.readouterr().out.strip()
    assert len(job_id) >= 8
    assert main(["status", job_id, "--api", url]) == 0
    assert "state:      queued" in capsys.readouterr().out
    assert main(["list", "--api", url]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].split() == ["ID", "NAME", "STATE", "PROGRESS", "ATTEMPTS", "CREATED"]
    assert listing[1].startswith(job_id)


def test_summary(api, spec_file, capsys):
    url, _ = api
    job = _json(capsys, ["submit", str(spec_file), "--api", url, "--output", "json"])
    summary = _json(capsys, ["summary", job["id"], "--api", url, "--output", "json"])
    assert "Dense" in json.dumps(summary)
    assert main(["summary", job["id"], "--api", url]) == 0
    table = capsys.readouterr().out
    assert "Layer (type)" in table and "Output Shape" in table and "Param #" in table
    assert "Total params: 15" in table


def test_logs_prints_metric_rows(api, spec_file, capsys):
    from service.store.metrics import MetricStore

    url, settings = api
    job = _json(capsys, ["submit", str(spec_file), "--api", url, "--output", "json"])
    MetricStore(settings.database_url).write(
        job["id"],
        [
            {
                "kind": "epoch",
                "step": s,
                "epoch": e,
                "batch": None,
                "attempt": 1,
                "logs": {"loss": 0.5 - e / 10},
                "wall_time": 0.0,
            }
            for e, s in ((0, 3), (1, 7))
        ],
    )
    assert main(["logs", job["id"], "--api", url, "--output", "json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1]
    assert main(["logs", job["id"], "--api", url]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "Epoch 1/2 - loss: 0.5000",
        "Epoch 2/2 - loss: 0.4000",
    ]
    assert main(["cancel", job["id"], "--api", url]) == 0
    capsys.readouterr()
    assert main(["logs", job["id"], "--follow", "--api", url]) == 3
    assert capsys.readouterr().out.splitlines() == [
        "Epoch 1/2",
        "loss: 0.5000",
        "Epoch 2/2",
        "loss: 0.4000",
        f"-- job {job['id']} cancelled",
    ]


def test_unknown_job_exits_1(api, capsys):
    url, _ = api
    assert main(["status", "0" * 32, "--api", url]) == 1
    assert capsys.readouterr().err.startswith("error: not_found: ")


def test_bad_usage_exits_2(tmp_path, capsys):
    assert main([]) == 2
    assert main(["status"]) == 2
    assert main(["frobnicate"]) == 2
    assert main(["list", "--output", "yaml"]) == 2
    assert main(["submit", str(tmp_path / "missing.json")]) == 2
    (tmp_path / "bad.json").write_text("{not json")
    assert main(["submit", str(tmp_path / "bad.json")]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_unreachable_api_exits_1(capsys):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["list", "--api", f"http://127.0.0.1:{port}"]) == 1
    assert capsys.readouterr().err.startswith("error: connection_error: cannot reach")


def test_format_summary_table():
    text = format_summary(
        {
            "name": "m",
            "layers": [
                {"name": "dense", "class_name": "Dense", "output_shape": [None, 3], "params": 1500}
            ],
            "total_params": 1500,
            "trainable_params": 1500,
            "non_trainable_params": 0,
        }
    )
    lines = text.splitlines()
    assert lines[0] == 'Model: "m"'
    assert lines[4].split() == ["dense", "(Dense)", "(None,", "3)", "1,500"]
    assert "Total params: 1,500" in lines and "Non-trainable params: 0" in lines


def test_module_help_runs():
    proc = subprocess.run(
        [sys.executable, "-m", "fitfleet", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0
    assert "submit" in proc.stdout and "worker" in proc.stdout


def test_import_pulls_no_server_or_tensorflow_code():
    code = (
        "import sys, fitfleet, fitfleet.cli, fitfleet.demo; "
        "print(sorted({m.split('.')[0] for m in sys.modules}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    loaded = set(json.loads(proc.stdout.replace("'", '"')))
    assert "fitfleet" in loaded
    assert not loaded & {"flask", "werkzeug", "tensorflow", "keras", "celery", "sqlalchemy"}


def test_examples_placeholder_is_filled_in_data_urls_only(tmp_path):
    from fitfleet.demo import EXAMPLES, fill_examples, load_example

    spec = {"name": "{examples}", "data": {"train": "file://{examples}/d.npz", "x": "x"}}
    filled = fill_examples(spec, tmp_path)
    assert filled["data"] == {"train": f"file://{tmp_path.resolve()}/d.npz", "x": "x"}
    assert filled["name"] == "{examples}"
    assert spec["data"]["train"] == "file://{examples}/d.npz"
    if (EXAMPLES / "digits_cnn.json").is_file():
        assert load_example("digits_cnn")["data"]["train"].startswith(EXAMPLES.as_uri())


def test_demo_with_unknown_example_exits_2(tmp_path, capsys):
    assert main(["demo", "--home", str(tmp_path / "home"), "--example", "no_such_example"]) == 2
    assert "no example 'no_such_example'" in capsys.readouterr().err


def test_a_server_command_without_the_server_extra_says_what_to_install(monkeypatch, capsys):
    import sys

    from fitfleet import cli

    monkeypatch.setitem(sys.modules, "gunicorn", None)  # as on a client-only install
    monkeypatch.setitem(sys.modules, "gunicorn.app.base", None)
    monkeypatch.delitem(sys.modules, "service.web.server", raising=False)
    assert cli.main(["api", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert "fitfleet[server]" in err and "gunicorn" in err
