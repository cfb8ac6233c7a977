"""Webhook registration: admin tokens only, known event kinds, and the address rules of
data locations (no metadata service; no private or loopback address unless allowed)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from service.core.config import Settings
from service.ops.webhooks import backoff, sign
from service.store.tokens import TokenStore
from service.web.app import create_app


@pytest.fixture
def settings(tmp_path, sqlite_url) -> Settings:
    return Settings.from_env({}, database_url=sqlite_url, home=str(tmp_path))


def post(settings, body, admin=True):
    token = TokenStore(settings.database_url).create("p", admin=admin)[1]
    client = create_app(settings).test_client()
    return client.post("/api/v1/webhooks", json=body, headers={"Authorization": f"Bearer {token}"})


@pytest.mark.parametrize(
    "url, rule",
    [
        ("http://10.1.2.3/hook", "private_address"),
        ("http://192.168.0.7:8080/hook", "private_address"),
        ("http://127.0.0.1:9000/hook", "private_address"),
        ("http://[::1]/hook", "private_address"),
        ("http://localhost/hook", "private_address"),
        ("http://0x7f000001/hook", "private_address"),
        ("http://169.254.169.254/latest/meta-data", "metadata_address"),
        ("http://metadata.google.internal/", "metadata_address"),
        ("ftp://example.com/hook", "scheme"),
        ("https://user:pw@example.com/hook", "credentials"),
    ],
)
def test_refused_at_registration(settings, url, rule):
    got = post(settings, {"project": "p", "url": url, "events": ["state"]})
    assert got.status_code == 422, got.get_json()
    error = got.get_json()["error"]
    assert error["details"]["rule"] == rule and error["details"]["field"] == "url"


def test_operator_may_allow_loopback_but_never_the_metadata_service(settings):
    allowed = replace(settings, webhook_private="on")
    got = post(allowed, {"project": "p", "url": "http://127.0.0.1:9/h", "events": ["state"]})
    assert got.status_code == 201, got.get_json()
    body = got.get_json()
    assert len(body["secret"]) == 64 and body["events"] == ["state"]
    got = post(allowed, {"url": "http://169.254.169.254/", "events": ["state"]})
    assert got.get_json()["error"]["details"]["rule"] == "metadata_address"


def test_public_url_registers_and_lists_without_its_secret(settings):
    got = post(
        settings, {"project": "p", "url": "https://93.184.215.14/h", "events": ["resumed", "state"]}
    )
    assert got.status_code == 201, got.get_json()
    assert got.get_json()["events"] == ["state", "resumed"]
    token = TokenStore(settings.database_url).create("p", admin=True)[1]
    client = create_app(settings).test_client()
    auth = {"Authorization": f"Bearer {token}"}
    listed = client.get("/api/v1/webhooks?project=p", headers=auth).get_json()["webhooks"]
    assert [h["url"] for h in listed] == ["https://93.184.215.14/h"]
    assert "secret" not in listed[0]
    hook = listed[0]["id"]
    assert client.get(f"/api/v1/webhooks/{hook}/deliveries", headers=auth).get_json() == {
        "deliveries": []
    }
    assert client.delete(f"/api/v1/webhooks/{hook}", headers=auth).status_code == 204
    assert client.delete(f"/api/v1/webhooks/{hook}", headers=auth).status_code == 404
    huge = client.get("/api/v1/webhooks/99999999999/deliveries", headers=auth)
    assert huge.status_code == 404  # beyond INTEGER: no such hook, not a database error


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"url": "https://93.184.215.14/h", "events": ["nope"]}, 400, "bad_request"),
        ({"url": "https://93.184.215.14/h", "events": []}, 400, "bad_request"),
        ({"url": "https://93.184.215.14/h", "events": ["state"], "x": 1}, 400, "bad_request"),
        (
            {"url": "https://93.184.215.14/h", "events": ["state"], "project": "../x"},
            400,
            "bad_project",
        ),
        ([], 400, "bad_request"),
    ],
)
def test_bad_bodies_are_400(settings, body, status, code):
    got = post(settings, body)
    assert got.status_code == status and got.get_json()["error"]["code"] == code


def test_a_project_token_cannot_manage_webhooks(settings):
    got = post(settings, {"url": "https://93.184.215.14/h", "events": ["state"]}, admin=False)
    assert got.status_code == 403 and got.get_json()["error"]["code"] == "admin_only"


def test_signature_and_backoff():
    import hashlib
    import hmac

    body = b'{"id":"1"}'
    expected = hmac.new(b"k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("k", "1700000000", body) == f"sha256={expected}"
    s = Settings.from_env({}, webhook_backoff_seconds=5.0, webhook_backoff_max_seconds=60.0)
    assert [backoff(s, n) for n in (1, 2, 3, 4, 5, 9)] == [5, 10, 20, 40, 60, 60]


def test_cli_adds_lists_reads_and_deletes(served_api, capsys):
    import json

    from fitfleet.cli import main

    url, _, token = served_api
    auth = ["--api", url, "--token", token]
    hook_url = "https://93.184.215.14/fitfleet"
    assert main(["webhook", "add", hook_url, "--events", "state,preempted", *auth]) == 0
    out = capsys.readouterr().out
    assert "secret: " in out and "not shown again" in out
    assert main(["webhook", "list", "--output", "json", *auth]) == 0
    hooks = json.loads(capsys.readouterr().out)["webhooks"]
    assert [(h["url"], h["events"], h["project"]) for h in hooks] == [
        (hook_url, ["state", "preempted"], "test")
    ]
    hook = str(hooks[0]["id"])
    assert main(["webhook", "deliveries", hook, *auth]) == 0
    assert capsys.readouterr().out.startswith("ID")
    assert main(["webhook", "delete", hook, *auth]) == 0
    assert main(["webhook", "delete", hook, *auth]) == 1
    assert "not_found" in capsys.readouterr().err
    assert main(["webhook", "add", "http://10.0.0.1/", "--events", "state", *auth]) == 1
    assert "private" in capsys.readouterr().err
