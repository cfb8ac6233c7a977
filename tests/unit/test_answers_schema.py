"""Every JSON answer of every route validates against the OpenAPI document the app serves.

The document's schemas are generated from the pydantic models of service/web/schemas.py;
this test drives each ``/api/v1`` route with real rows behind it (a job with two attempts,
a checkpoint, batch and epoch metrics, a worker) and checks the answer, errors included.
"""

from __future__ import annotations

import hashlib
import io
import time
from datetime import datetime, timezone

import numpy as np
import pytest

jsonschema = pytest.importorskip("jsonschema")
pytest.importorskip("flask")

from service.store import worklogs
from service.store.fleet import FleetStore
from service.store.jobs import JobStore
from service.store.metrics import MetricStore
from service.web.openapi import openapi_path
from tests.unit.apihelpers import api_client, make_settings


@pytest.fixture
def world(tmp_path, sqlite_url):
    """An authenticated test client and a job with attempts, a checkpoint and metrics."""
    settings = make_settings(tmp_path, sqlite_url)
    client = api_client(settings)
    jobs = JobStore(sqlite_url)
    job = jobs.create(
        {"name": "doc", "model": {}, "compile": {}, "data": {}},
        epochs=2,
        summary={"layers": [], "total_params": 0},
        max_attempts=3,
        project="test",
    )
    first = jobs.claim(job["id"], "w1", 0.01)
    time.sleep(0.05)
    jobs.reap()
    claim = jobs.claim(job["id"], "w2", 30)
    assert first is not None and claim is not None
    folder = tmp_path / "store" / "ck" / "000000000003"
    folder.mkdir(parents=True)
    payload = b"bytes" * 10
    (folder / "model.keras").write_bytes(payload)
    digest = hashlib.sha256(payload).hexdigest()
    jobs.commit_checkpoint(
        job["id"],
        claim.attempt_id,
        {
            "step": 3,
            "epoch": 0,
            "batch": 3,
            "uri": folder.as_uri(),
            "files": {"model.keras": {"sha256": digest, "bytes": len(payload)}},
            "bytes": len(payload),
            "sha256": digest,
            "logs": {"loss": 0.5},
        },
    )
    now = time.time()
    MetricStore(sqlite_url).write(
        job["id"],
        [
            {
                "kind": "batch",
                "step": s,
                "epoch": 0,
                "batch": s,
                "attempt": claim.number,
                "logs": {"loss": 1.0 / (s + 1)},
                "wall_time": now + s,
            }
            for s in range(4)
        ]
        + [
            {
                "kind": "epoch",
                "step": 3,
                "epoch": 0,
                "batch": None,
                "attempt": claim.number,
                "logs": {"loss": 0.4, "val_loss": 0.5},
                "wall_time": now + 4,
            }
        ],
    )
    worklogs.write(
        sqlite_url,
        job["id"],
        claim.number,
        [{"at": datetime.now(timezone.utc), "level": "ERROR", "logger": "w", "message": "m"}],
    )
    FleetStore(sqlite_url).report(
        "w2", hostname="h", pid=1, queues=["default"], state="busy", job_id=job["id"]
    )
    return client, job["id"]


def _check(document: dict, method: str, path: str, response) -> None:
    op = document["paths"][path][method]
    answers = op["responses"]
    status = str(response.status_code)
    assert status in answers or "default" in answers, f"{method} {path}: {status} undocumented"
    content = (answers.get(status) or answers["default"]).get("content", {})
    if response.is_json:
        assert "application/json" in content, f"{method} {path}: JSON answer undocumented"
        schema = {**content["application/json"]["schema"], "components": document["components"]}
        jsonschema.validate(response.get_json(), schema, format_checker=jsonschema.FormatChecker())


def test_every_route_answers_as_its_document_says(world):
    client, job_id = world
    document = client.get("/api/v1/openapi.json").get_json()
    npz = io.BytesIO()
    np.savez(npz, x=np.zeros((2, 3), "float32"))
    calls = {
        ("get", "/api/v1/jobs/{job_id}/checkpoints/{step}/{name}"): ("/3/model.keras", None),
        ("post", "/api/v1/data"): ("", npz.getvalue()),
        ("post", "/api/v1/jobs"): ("", b'{"model": {}}'),  # refused: 422 with the envelope
    }
    seen = set()
    for rule in client.application.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1"):
            continue
        path = openapi_path(rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            key = (method.lower(), path)
            url = path.replace("{job_id}", job_id)
            suffix, body = calls.get(key, ("", None))
            if "{step}" in url:
                url = url.split("/checkpoints/")[0] + "/checkpoints" + suffix
            kwargs = {"data": body} if body is not None else {}
            if key == ("post", "/api/v1/jobs"):
                kwargs["content_type"] = "application/json"
            response = getattr(client, method.lower())(url, **kwargs)
            assert response.status_code < 500, (key, response.data[:300])
            _check(document, key[0], path, response)
            if key[0] == "get":
                missing = client.get(url.replace(job_id, "0" * 32))
                if missing.status_code == 404:
                    _check(document, key[0], path, missing)
            seen.add(key)
    assert ("get", "/api/v1/jobs/{job_id}/attempts") in seen and len(seen) >= 15
