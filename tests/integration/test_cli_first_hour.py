"""What a newcomer meets first: errors that say what to do, the demo's token, ``| head``."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fitfleet.cli import main
from service.core.config import mask_url, reset_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def settings_env(monkeypatch, tmp_path):
    """Settings read afresh from the environment the test sets."""
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "FITFLEET_TOKEN", "FITFLEET_API_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FITFLEET_HOME", str(tmp_path / "home"))
    reset_settings()
    handlers, level = logging.root.handlers[:], logging.root.level
    yield monkeypatch
    logging.root.handlers[:] = handlers  # server commands log to the stderr captured here
    logging.root.setLevel(level)
    reset_settings()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db(request, tmp_path):
    """A database that answers but has no tables yet, on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'empty.db'}"
    return request.getfixturevalue("fresh_pg")


def test_token_create_on_a_database_without_tables_names_url_and_fix(
    empty_db, settings_env, capsys
):
    settings_env.setenv("DATABASE_URL", empty_db)
    assert main(["token", "create", "--project", "demo"]) == 1
    err = capsys.readouterr().err
    assert mask_url(empty_db) in err and "set by DATABASE_URL" in err
    assert "run `fitfleet db upgrade`" in err
    assert main(["db", "upgrade"]) == 0  # the command the message names makes it work
    capsys.readouterr()
    assert main(["token", "create", "--project", "demo"]) == 0
    assert capsys.readouterr().out.startswith("ff_")


def test_unreachable_postgres_masks_the_password_and_says_what_to_start(settings_env, capsys):
    settings_env.setenv("DATABASE_URL", "postgresql+psycopg://fit:s3cret@127.0.0.1:1/fitfleet")
    assert main(["token", "list"]) == 1
    err = capsys.readouterr().err
    assert "postgresql+psycopg://fit:***@127.0.0.1:1/fitfleet" in err and "s3cret" not in err
    assert "set by DATABASE_URL" in err and "`make services`" in err
    assert main(["db", "current"]) == 1
    assert "fit:***@127.0.0.1:1" in capsys.readouterr().err


def test_long_running_commands_warn_once_then_retry(settings_env, fresh_pg, capsys):
    from fitfleet.cli_checks import warn_if_broker_down, warn_if_database_down
    from service.core.config import Settings

    warn_if_database_down(
        Settings.from_env({}, database_url="postgresql+psycopg://fit:pw@127.0.0.1:1/x")
    )
    err = capsys.readouterr().err
    assert err.startswith("warning: cannot use the database at postgresql+psycopg://fit:***@")
    warn_if_database_down(Settings.from_env({}, database_url=fresh_pg))  # answers, no tables
    assert "run `fitfleet db upgrade`" in capsys.readouterr().err
    warn_if_broker_down(Settings.from_env({}, broker_url="redis://:pw@127.0.0.1:1/0"))
    err = capsys.readouterr().err
    assert "broker at redis://:***@127.0.0.1:1/0" in err and "CELERY_BROKER_URL" in err


def test_default_database_says_it_is_the_default_under_fitfleet_home(
    settings_env, tmp_path, capsys
):
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "fitfleet.db").touch()
    assert main(["token", "list"]) == 1
    err = capsys.readouterr().err
    assert f"sqlite:///{tmp_path / 'home' / 'fitfleet.db'}" in err
    assert "DATABASE_URL being unset" in err and f"FITFLEET_HOME is {tmp_path / 'home'}" in err


def test_mask_url():
    assert mask_url("redis://:pw@h:6379/0") == "redis://:***@h:6379/0"
    assert mask_url("postgresql://u@h/db") == "postgresql://u@h/db"
    assert mask_url("sqlite:////x/y.db") == "sqlite:////x/y.db"


def test_the_demo_token_is_used_for_its_own_api_only(served_api, settings_env, tmp_path, capsys):
    from fitfleet.demo import save_token

    url, _, token = served_api
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    path = save_token(home, url, token)
    assert path.stat().st_mode & 0o777 == 0o600
    assert main(["list", "--api", url]) == 0
    assert capsys.readouterr().out.startswith("ID")
    path.write_text(json.dumps({"api_url": "http://127.0.0.1:9", "token": token}))
    assert main(["list", "--api", url]) == 1  # saved for another API: not sent here
    assert "unauthorized" in capsys.readouterr().err


class _ClosedPipe:
    def write(self, _text):
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self):
        raise BrokenPipeError(32, "Broken pipe")

    def fileno(self):
        raise ValueError("no descriptor")


@pytest.mark.parametrize("command", [["list"], ["status", "ID"], ["logs", "ID", "--kind", "batch"]])
def test_a_closed_pipe_ends_quietly(
    served_api, settings_env, model_json, tmp_path, command, capsys
):
    url, settings, token = served_api
    settings_env.setenv("FITFLEET_TOKEN", token)
    spec = tmp_path / "spec.json"
    spec.write_text(
        json.dumps(
            {
                "model": model_json,
                "compile": {"optimizer": "adam", "loss": "sparse_categorical_crossentropy"},
                "data": {"train": "file://{examples}/data.npz"},
                "fit": {"epochs": 1},
            }
        )
    )
    import numpy as np

    np.savez(tmp_path / "data.npz", x=np.zeros((8, 4), "float32"), y=np.zeros(8, "int64"))
    assert main(["submit", str(spec), "--api", url]) == 0
    job_id = capsys.readouterr().out.strip()
    from service.store.metrics import MetricStore

    MetricStore(settings.database_url).write(
        job_id,
        [
            {
                "kind": "batch",
                "step": s,
                "epoch": 0,
                "batch": s,
                "attempt": 1,
                "logs": {"loss": 1.0},
                "wall_time": float(s),
            }
            for s in range(3)
        ],
    )
    settings_env.setattr(sys, "stdout", _ClosedPipe())
    argv = [job_id if a == "ID" else a for a in command]
    assert main([*argv, "--api", url]) == 141


def test_logs_piped_to_head_prints_no_traceback(served_api, model_json, tmp_path):
    url, settings, token = served_api
    from service.store.metrics import MetricStore

    env = {
        **os.environ,
        "FITFLEET_TOKEN": token,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    import numpy as np

    np.savez(tmp_path / "data.npz", x=np.zeros((8, 4), "float32"), y=np.zeros(8, "int64"))
    spec = {
        "model": model_json,
        "data": {"train": (tmp_path / "data.npz").as_uri()},
        "compile": {"optimizer": "adam", "loss": "sparse_categorical_crossentropy"},
        "fit": {"epochs": 1},
    }
    from fitfleet import Client

    job_id = Client(url, token=token).submit(spec).id
    MetricStore(settings.database_url).write(
        job_id,
        [
            {
                "kind": "batch",
                "step": s,
                "epoch": 0,
                "batch": s,
                "attempt": 1,
                "logs": {"loss": 1.0, "accuracy": 0.5},
                "wall_time": float(s),
            }
            for s in range(3000)
        ],
    )
    done = subprocess.run(
        f"{sys.executable} -m fitfleet logs {job_id} --kind batch --api {url} | head -n 2",
        shell=True,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.stdout.splitlines() == [
        "Epoch 1/1 1/? - loss: 1.0000 - accuracy: 0.5000",
        "Epoch 1/1 2/? - loss: 1.0000 - accuracy: 0.5000",
    ]
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr
