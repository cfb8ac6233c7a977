"""The API under gunicorn (``service.web.server.serve``), as ``fitfleet api`` runs it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from service.core.config import Settings
from tests.conftest import free_port
from tests.unit.apihelpers import admin_token, base_job_spec, make_settings, sequential_json


@pytest.fixture
def settings(tmp_path, sqlite_url):
    return make_settings(tmp_path, sqlite_url)


@pytest.fixture
def job_spec(tmp_path):
    return base_job_spec({"sequential": sequential_json()}, tmp_path)


ROOT = Path(__file__).resolve().parents[2]


def _serve_command(settings: Settings, port: int) -> list[str]:
    values = {
        k: getattr(settings, k)
        for k in (
            "database_url",
            "broker_url",
            "storage_url",
            "home",
            "max_spec_bytes",
            "data_file_roots",
        )
    }
    code = (
        "from service.core.config import Settings\n"
        "from service.web.server import serve\n"
        f"serve(Settings.from_env({{}}, **{values!r}), port={port}, workers=1, threads=2)\n"
    )
    return [sys.executable, "-c", code]


def _http(method: str, url: str, body: bytes | None = None, headers=None):
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_serve_runs_the_api_under_gunicorn(settings, job_spec):
    port = free_port()
    proc = subprocess.Popen(
        _serve_command(settings, port), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read().decode()
            try:
                status, body = _http("GET", f"{base}/healthz")
                break
            except OSError:
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        assert (status, body) == (200, {"status": "ok"})
        auth = {"Authorization": f"Bearer {admin_token(settings)}"}
        status, job = _http(
            "POST",
            f"{base}/api/v1/jobs",
            json.dumps(job_spec).encode(),
            {"Content-Type": "application/json", **auth},
        )
        assert status == 201 and job["state"] == "queued"
        assert _http("GET", f"{base}/api/v1/jobs/{job['id']}", None, auth)[1]["id"] == job["id"]
        chunks = iter([b'{"name": "', b"x" * 120_000, b'"}'])
        status, body = _http(
            "POST",
            f"{base}/api/v1/jobs",
            chunks,
            {"Content-Type": "application/json", "Transfer-Encoding": "chunked", **auth},
        )
        assert status == 413 and body["error"]["code"] == "payload_too_large"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            output = proc.communicate(timeout=40)[0].decode()
        except subprocess.TimeoutExpired:
            proc.kill()
            output = proc.communicate()[0].decode()
    assert proc.returncode == 0, output
    assert " 200 " not in output  # no access log by default


def test_serve_refuses_a_database_behind(tmp_path):
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'empty.db'}")
    proc = subprocess.run(
        _serve_command(settings, free_port()),
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "fitfleet api: database schema is at nothing" in proc.stderr
    assert "fitfleet db upgrade" in proc.stderr
