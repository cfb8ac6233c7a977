"""API tokens and tenant isolation: the token store, and every route against every caller."""

from __future__ import annotations

import hashlib
import json
import logging

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from sqlalchemy import text

from service.core.config import Settings
from service.core.errors import BadRequest, NotFound
from service.storage import final_model_key, open_store
from service.store.db import get_engine
from service.store.jobs import JobStore
from service.store.metrics import MetricStore
from service.store.tokens import TokenStore, hash_secret
from service.web.app import create_app

CALLERS = ("none", "bad", "revoked", "other", "own", "admin")


def test_a_token_is_stored_only_as_its_hash(sqlite_url):
    tokens = TokenStore(sqlite_url)
    record, secret = tokens.create("alpha", name="ci")
    assert secret.startswith("ff_") and len(secret) > 40
    assert record["prefix"] == secret[:10] and "token" not in record
    with get_engine(sqlite_url).connect() as conn:
        row = conn.execute(text("SELECT * FROM tokens")).mappings().one()
    assert row["token_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in json.dumps({k: str(v) for k, v in row.items()})
    assert hash_secret(secret) == row["token_hash"]


def test_verify_revoke_and_list(sqlite_url):
    tokens = TokenStore(sqlite_url)
    record, secret = tokens.create("alpha")
    admin, admin_secret = tokens.create("ops", admin=True)
    who = tokens.verify(secret)
    assert (who.project, who.is_admin, who.scope) == ("alpha", False, "alpha")
    assert tokens.verify(admin_secret).scope is None
    assert tokens.verify(secret + "x") is None and tokens.verify("") is None
    assert tokens.list()[0]["last_used_at"] is not None  # verify stamps the use
    tokens.revoke(record["id"])
    assert tokens.verify(secret) is None
    assert tokens.revoke(record["id"])["revoked_at"]  # twice is harmless
    assert [t["id"] for t in tokens.list(project="alpha")] == [record["id"]]
    assert [t["id"] for t in tokens.list(include_revoked=False)] == [admin["id"]]
    with pytest.raises(NotFound):
        tokens.revoke(999)


@pytest.mark.parametrize("name", ["", "../x", "a/b", "..", "x" * 101, " a", "a b"])
def test_project_names_must_be_safe_in_object_keys(sqlite_url, name):
    with pytest.raises(BadRequest):
        TokenStore(sqlite_url).create(name)


# -- the matrix ---------------------------------------------------------------------------


def _spec(tmp_path) -> dict:
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "d.npz", x=rng.normal(size=(20, 4)).astype("float32"), y=rng.integers(0, 3, 20)
    )
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)], name="tiny")
    return {
        "model": json.loads(model.to_json()),
        "compile": {"loss": "sparse_categorical_crossentropy"},
        "data": {"train": (tmp_path / "d.npz").as_uri()},
    }


@pytest.fixture
def world(tmp_path, sqlite_url):
    """An app with projects alpha and beta, a finished alpha job, and one token per caller."""
    settings = Settings.from_env(
        {},
        database_url=sqlite_url,
        broker_url="filesystem://",
        storage_url=(tmp_path / "store").as_uri(),
        home=str(tmp_path),
    )
    tokens = TokenStore(sqlite_url)
    secrets = {
        "own": tokens.create("alpha")[1],
        "other": tokens.create("beta")[1],
        "admin": tokens.create("ops", admin=True)[1],
        "bad": "ff_not-a-real-token",
    }
    revoked, secrets["revoked"] = tokens.create("alpha")
    tokens.revoke(revoked["id"])
    job_id = _finished_job(settings, "alpha")
    return create_app(settings).test_client(), secrets, job_id, _spec(tmp_path)


def _finished_job(settings, project: str) -> str:
    jobs = JobStore(settings.database_url)
    job = jobs.create(
        {"name": "j", "fit": {"epochs": 1}},
        epochs=1,
        max_attempts=1,
        summary={"layers": [], "total_params": 0},
        project=project,
    )
    claim = jobs.claim(job["id"], "w", 30)
    MetricStore(settings.database_url).write(
        job["id"],
        [
            {
                "kind": "epoch",
                "step": 1,
                "epoch": 0,
                "batch": None,
                "attempt": 1,
                "logs": {"loss": 1.0},
                "wall_time": 0.0,
            }
        ],
    )
    jobs.commit_checkpoint(
        job["id"],
        claim.attempt_id,
        {
            "step": 1,
            "epoch": 0,
            "batch": 0,
            "uri": "file:///nowhere",
            "files": {},
            "bytes": 1,
            "sha256": "0" * 64,
            "logs": {},
        },
    )
    store = open_store(settings.storage_url)
    store.put_bytes(final_model_key(project, job["id"]), b"PK model")
    jobs.finish(
        job["id"],
        claim.attempt_id,
        "succeeded",
        model_uri=store.uri(final_model_key(project, job["id"])),
    )
    return job["id"]


def _call(client, method: str, path: str, secret: str | None, body=None):
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    return client.open(path, method=method, headers=headers, json=body)


JOB_ROUTES = [
    ("GET", ""),
    ("GET", "/attempts"),
    ("GET", "/checkpoints"),
    ("GET", "/summary"),
    ("GET", "/metrics"),
    ("GET", "/model"),
    ("POST", "/cancel"),
]


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("method,suffix", JOB_ROUTES)
def test_job_routes_answer_only_their_project_and_admins(world, caller, method, suffix):
    client, secrets, job_id, _ = world
    response = _call(client, method, f"/api/v1/jobs/{job_id}{suffix}", secrets.get(caller))
    if caller in ("none", "bad", "revoked"):
        assert response.status_code == 401
        assert response.get_json()["error"]["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        if caller != "none":
            assert secrets[caller] not in response.get_data(as_text=True)
    elif caller == "other":  # never 403: ids are not probed
        assert response.status_code == 404
        assert response.get_json()["error"]["message"] == f"no job with id {job_id!r}"
    elif method == "POST":  # the job has ended: the caller may see it, and is told so
        assert response.status_code == 409
    else:
        assert response.status_code == 200, response.get_data(as_text=True)


@pytest.mark.parametrize("caller", CALLERS)
def test_listing_shows_only_the_callers_project(world, caller):
    client, secrets, job_id, _ = world
    response = _call(client, "GET", "/api/v1/jobs", secrets.get(caller))
    if caller in ("none", "bad", "revoked"):
        assert response.status_code == 401
        return
    ids = [j["id"] for j in response.get_json()["jobs"]]
    assert ids == ([] if caller == "other" else [job_id])


@pytest.mark.parametrize("caller", CALLERS)
def test_submitting_files_the_job_under_the_tokens_project(world, caller):
    client, secrets, _, spec = world
    response = _call(client, "POST", "/api/v1/jobs", secrets.get(caller), spec)
    if caller in ("none", "bad", "revoked"):
        assert response.status_code == 401
        return
    assert response.status_code == 201, response.get_data(as_text=True)
    expected = {"own": "alpha", "other": "beta", "admin": "ops"}[caller]
    assert response.get_json()["project"] == expected


def test_every_api_route_needs_a_token_but_health_and_the_document(world):
    client, secrets, job_id, _ = world
    app = client.application
    open_paths = {"/api/v1/healthz", "/api/v1/readyz", "/api/v1/openapi.json"}
    checked = 0
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1"):
            continue
        path = rule.rule.replace("<job_id>", job_id).replace("<int:step>", "1")
        path = path.replace("<name>", "model.keras")
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            for caller in ("none", "bad", "revoked"):
                status = _call(client, method, path, secrets.get(caller)).status_code
                if rule.rule in open_paths:
                    assert status in (200, 503), (method, path, caller, status)
                else:
                    assert status == 401, (method, path, caller, status)
                checked += 1
            if "<job_id>" in rule.rule:  # another project's job: 404 on every route
                assert _call(client, method, path, secrets["other"]).status_code == 404, path
    assert checked >= 3 * 10


def test_pages_and_health_stay_open(world):
    client, _, _, _ = world
    assert client.get("/healthz").status_code == 200
    assert client.get("/api/v1/healthz").status_code == 200
    assert client.get("/api/v1/openapi.json").status_code == 200
    for path in ("/", "/fleet", "/jobs/0123", "/dashboard/static/common.js"):
        page = client.get(path)  # the dashboard's pages and files: the page asks for a token
        assert page.status_code == 200, path


def test_auth_off_is_explicit_and_logged(tmp_path, sqlite_url, caplog):
    settings = Settings.from_env(
        {},
        database_url=sqlite_url,
        broker_url="filesystem://",
        storage_url=(tmp_path / "s").as_uri(),
        home=str(tmp_path),
        auth="off",
    )
    with caplog.at_level(logging.WARNING):
        client = create_app(settings).test_client()
    assert "authentication is OFF" in caplog.text
    assert client.get("/api/v1/jobs").status_code == 200
    with pytest.raises(ValueError):
        create_app(Settings.from_env({}, database_url=sqlite_url, auth="maybe"))


def test_malformed_authorization_headers(world):
    client, secrets, _, _ = world
    for header in ("Basic dXNlcjpwYXNz", "Bearer", "Bearer  ", secrets["own"], "Token x"):
        response = client.get("/api/v1/jobs", headers={"Authorization": header})
        assert response.status_code == 401, header
        assert "dXNlcjpwYXNz" not in response.get_data(as_text=True)


def test_token_commands(sqlite_url, monkeypatch, capsys):
    from fitfleet.cli import main
    from service.core import config

    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    config.reset_settings()
    try:
        assert main(["token", "create", "--project", "vision", "--name", "ci"]) == 0
        out = capsys.readouterr()
        secret = out.out.strip()
        assert secret.startswith("ff_") and "only time" in out.err
        assert TokenStore(sqlite_url).verify(secret).project == "vision"
        assert main(["token", "create", "--project", "ops", "--admin", "--output", "json"]) == 0
        created = json.loads(capsys.readouterr().out)
        assert created["admin"] is True and created["token"].startswith("ff_")
        assert main(["token", "list", "--output", "json"]) == 0
        listed = capsys.readouterr().out
        assert secret not in listed and created["token"] not in listed
        assert [t["project"] for t in json.loads(listed)["tokens"]] == ["vision", "ops"]
        assert main(["token", "revoke", "1"]) == 0
        assert "revoked" in capsys.readouterr().out
        assert TokenStore(sqlite_url).verify(secret) is None
        assert main(["token", "list"]) == 0
        assert "vision" in capsys.readouterr().out
        assert main(["token", "revoke", "99"]) == 1
        assert main(["token", "create", "--project", "../etc"]) == 2
        assert "bad_project" in capsys.readouterr().err
    finally:
        config.reset_settings()


# -- failing closed -----------------------------------------------------------------------

OPEN_ENDPOINTS = {  # no data: liveness, readiness, the API document, page shells, scrapes
    "health.get_health",
    "health.get_readiness",
    "health_root.get_health",
    "health_root.get_readiness",
    "openapi.get_openapi",
    "prometheus.get_metrics",
    "dashboard.show_jobs",
    "dashboard.show_job",
    "dashboard.show_fleet",
    "dashboard.show_compare",
    "dashboard.show_sweeps",
    "dashboard.show_sweep",
    "dashboard.plotly_js",
    "dashboard.static",
    "static",
}


def _spy_on_views(app) -> list[tuple[str, object]]:
    """Wrap every view so a call records (endpoint, the identity it would act for)."""
    from flask import g

    from service.web import auth

    calls = []
    for endpoint, view in list(app.view_functions.items()):

        def spy(*args, _endpoint=endpoint, _view=view, **kwargs):
            try:
                seen = auth.caller()
            except Exception as exc:  # noqa: BLE001 - what the handler would have met
                seen = exc
            calls.append((_endpoint, g.get("identity"), seen))
            return _view(*args, **kwargs)

        app.view_functions[endpoint] = spy
    return calls


def _fill(rule: str, job_id: str) -> str:
    path = (
        rule.replace("<job_id>", job_id).replace("<int:step>", "1").replace("<sweep_id>", "0" * 32)
    )
    return path.replace("<name>", "model.keras").replace("<path:filename>", "common.js")


def test_every_route_pages_included_fails_closed_without_a_token(world):
    client, secrets, job_id, _ = world
    app = client.application
    calls = _spy_on_views(app)
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert OPEN_ENDPOINTS <= endpoints  # the open list names real routes
    from service.web.auth import OPEN_ENDPOINTS as declared

    assert set(declared) == OPEN_ENDPOINTS  # a new open route is a decision, made here too
    data_routes = 0
    for rule in app.url_map.iter_rules():
        path = _fill(rule.rule, job_id)
        for method in sorted(rule.methods - {"OPTIONS"}):
            for caller in ("none", "bad", "revoked"):
                calls.clear()
                response = _call(client, method, path, secrets.get(caller))
                if rule.endpoint in OPEN_ENDPOINTS:
                    assert response.status_code != 401, (method, path, caller)
                    continue
                assert response.status_code == 401, (method, path, caller, response.status_code)
                if method != "HEAD":  # a HEAD answer has no body
                    assert response.get_json()["error"]["code"] == "unauthorized"
                assert calls == [], (method, path, caller)  # the handler never ran
                data_routes += 1
    assert data_routes >= 3 * 14


def test_caller_never_falls_back_to_an_admin(world):
    from flask import g

    from service.core.errors import Unauthorized
    from service.web.auth import caller, scope

    client, _, _, _ = world
    with client.application.test_request_context("/api/v1/jobs"):
        assert g.get("identity") is None  # the token check has not run
        with pytest.raises(Unauthorized):
            caller()
        with pytest.raises(Unauthorized):
            scope()


def test_a_data_route_added_later_is_guarded_wherever_it_lives(tmp_path, sqlite_url):
    """A route outside /api/v1 that is not declared open still needs a token."""
    from service.web.auth import caller

    settings = Settings.from_env(
        {},
        database_url=sqlite_url,
        broker_url="filesystem://",
        storage_url=(tmp_path / "s").as_uri(),
        home=str(tmp_path),
    )
    app = create_app(settings)
    seen = []

    @app.get("/export")
    def export():  # registered after the factory: not in the open list
        seen.append(caller())
        return {"ok": True}

    client = app.test_client()
    assert client.get("/export").status_code == 401 and seen == []
    admin = TokenStore(sqlite_url).create("ops", admin=True)[1]
    assert client.get("/export", headers={"Authorization": f"Bearer {admin}"}).status_code == 200
    assert seen[0].is_admin and seen[0].token_id is not None
    assert client.get("/no-such-page").status_code == 404  # an unknown page is not a 401


def test_auth_off_sets_an_identity_for_every_route(tmp_path, sqlite_url):
    settings = Settings.from_env(
        {},
        database_url=sqlite_url,
        broker_url="filesystem://",
        storage_url=(tmp_path / "s").as_uri(),
        home=str(tmp_path),
        auth="off",
    )
    app = create_app(settings)
    calls = _spy_on_views(app)
    assert app.test_client().get("/api/v1/fleet").status_code == 200
    ((endpoint, identity, seen),) = calls
    assert endpoint == "fleet.get_fleet" and identity is seen and identity.is_admin
