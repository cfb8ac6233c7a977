"""The published OpenAPI document: it matches the real routes, and the API keeps to it.

Schemathesis generates requests from ``/api/v1/openapi.json`` and sends them, with a valid
token, to the app on PostgreSQL: no answer may be a 5xx or stray from the document.
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
keras = pytest.importorskip("keras")

from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from service.core.config import Settings
from service.store.jobs import JobStore
from service.store.tokens import TokenStore
from service.web.app import create_app
from service.web.openapi import openapi_path

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]


@pytest.fixture(scope="module")
def served(pg_url, tmp_path_factory):
    """The app on the session's PostgreSQL database, an admin token and a finished job."""
    home = tmp_path_factory.mktemp("openapi")
    s = Settings.from_env(
        {},
        database_url=pg_url,
        broker_url="filesystem://",
        storage_url=(home / "store").as_uri(),
        home=str(home),
    )
    jobs = JobStore(pg_url)
    job = jobs.create(
        {"name": "doc"},
        epochs=1,
        summary={"layers": [], "total_params": 0},
        max_attempts=1,
        project="docs",
    )
    claim = jobs.claim(job["id"], "w", 30)
    jobs.finish(job["id"], claim.attempt_id, "failed", error_code="x", error_message="y")
    token = TokenStore(pg_url).create("docs", admin=True)[1]
    return create_app(s), token, job["id"]


def _exercise(operation, headers: dict, job_id: str) -> None:
    """Generated requests for one operation, each also sent once for a job that exists."""

    @given(operation.as_strategy())
    @settings(
        max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    def run(case):
        case.call_and_validate(headers=headers, checks=CHECKS)
        if "job_id" in (case.path_parameters or {}):
            case.path_parameters = {**case.path_parameters, "job_id": job_id}
            case.call_and_validate(headers=headers, checks=CHECKS)

    run()


def test_the_api_keeps_to_its_document(served):
    app, token, job_id = served
    loaded = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in loaded.get_all_operations()]
    assert len(operations) >= 12
    for operation in operations:
        _exercise(operation, {"Authorization": f"Bearer {token}"}, job_id)


def test_the_document_lists_exactly_the_routes(served):
    app, _, _ = served
    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.1")
    routes = {
        (m.lower(), openapi_path(r.rule))
        for r in app.url_map.iter_rules()
        if r.rule.startswith("/api/v1")
        for m in r.methods - {"HEAD", "OPTIONS"}
    }
    listed = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert listed == routes
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert doc["paths"]["/api/v1/healthz"]["get"]["security"] == []
    assert "401" in doc["paths"]["/api/v1/jobs"]["post"]["responses"]
