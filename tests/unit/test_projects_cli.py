"""``fitfleet project set|list`` against a SQLite database, and the project API's checks."""

from __future__ import annotations

import json

from service.store.projects import ProjectStore


def test_project_commands(sqlite_url, monkeypatch, capsys):
    from fitfleet.cli import main
    from service.core import config

    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    config.reset_settings()
    try:
        args = ["project", "set", "vision", "--weight", "3", "--max-running", "4"]
        assert main([*args, "--max-gpus", "8"]) == 0
        assert capsys.readouterr().out.strip() == (
            "project vision: weight 3, max running 4, max GPUs 8"
        )
        assert main(["project", "set", "vision", "--max-gpus", "none"]) == 0  # others kept
        capsys.readouterr()
        got = ProjectStore(sqlite_url).get("vision")
        assert (got["weight"], got["max_running"], got["max_gpus"]) == (3.0, 4, None)
        assert main(["project", "list", "--output", "json"]) == 0
        listed = json.loads(capsys.readouterr().out)["projects"]
        assert [p["name"] for p in listed] == ["vision"] and listed[0]["configured"]
        assert main(["project", "list"]) == 0
        assert "vision" in capsys.readouterr().out
        assert main(["project", "set", "vision", "--weight", "0"]) == 2  # argparse refuses
        assert "above 0" in capsys.readouterr().err
        assert main(["project", "set", "../x", "--weight", "1"]) == 2
        assert "bad_project" in capsys.readouterr().err
    finally:
        config.reset_settings()


def test_a_project_without_settings_has_weight_1_and_no_limits(sqlite_url):
    got = ProjectStore(sqlite_url).get("nobody")
    assert got["weight"] == 1.0 and got["max_running"] is None and got["max_gpus"] is None
    assert not got["configured"] and got["running"] == 0


def test_project_api_admin_only_and_checked(tmp_path, sqlite_url):
    from service.core.config import Settings
    from service.store.tokens import TokenStore
    from service.web.app import create_app

    settings = Settings.from_env(
        {},
        database_url=sqlite_url,
        broker_url="filesystem://",
        storage_url=(tmp_path / "store").as_uri(),
        home=str(tmp_path),
    )
    tokens = TokenStore(sqlite_url)
    admin, own = tokens.create("ops", admin=True)[1], tokens.create("vision")[1]
    client = create_app(settings).test_client()

    def call(method, path, secret, body=None):
        return client.open(
            path, method=method, headers={"Authorization": f"Bearer {secret}"}, json=body
        )

    r = call("PUT", "/api/v1/projects/vision", admin, {"weight": 3, "max_running": 2})
    assert r.status_code == 200 and r.json["weight"] == 3 and r.json["max_running"] == 2
    r = call("PUT", "/api/v1/projects/vision", own, {"weight": 9})
    assert r.status_code == 403 and r.json["error"]["code"] == "forbidden"
    r = call("PUT", "/api/v1/projects/vision", admin, {"weight": -1})
    assert r.status_code == 400 and r.json["error"]["details"]["field"] == "weight"
    r = call("PUT", "/api/v1/projects/vision", admin, {"max_gpus": 2, "colour": "red"})
    assert r.status_code == 400 and r.json["error"]["details"]["field"] == "colour"
    r = call("PUT", "/api/v1/projects/vision", admin, {"max_running": None})
    assert r.status_code == 200 and r.json["max_running"] is None and r.json["weight"] == 3
    assert call("GET", "/api/v1/projects/vision", own).json["weight"] == 3
    assert call("GET", "/api/v1/projects/ops", own).status_code == 404  # not its own
    names = [p["name"] for p in call("GET", "/api/v1/projects", own).json["projects"]]
    assert names == ["vision"]
    names = [p["name"] for p in call("GET", "/api/v1/projects", admin).json["projects"]]
    assert names == ["vision"]  # the projects with settings or active jobs
