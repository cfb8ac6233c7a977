"""GET /jobs/{id}/events and /jobs/{id}/logs: cursors, one attempt's lines, project scope."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

pytest.importorskip("flask")

from service.store import worklogs
from service.store.jobs import JobStore
from service.store.tokens import TokenStore
from tests.unit.apihelpers import api_client, make_settings


@pytest.fixture
def world(tmp_path, sqlite_url):
    settings = make_settings(tmp_path, sqlite_url)
    jobs = JobStore(sqlite_url)
    job = jobs.create({"name": "j"}, epochs=1, summary=None, max_attempts=3, project="p1")
    claim = jobs.claim(job["id"], "w1", 30)
    jobs.release(job["id"], claim.attempt_id, "the worker was asked to stop")
    second = jobs.claim(job["id"], "w2", 30)
    for number in (claim.number, second.number):
        row = {"at": datetime.now(timezone.utc), "level": "WARNING", "logger": "w"}
        worklogs.write(sqlite_url, job["id"], number, [{**row, "message": f"from {number}"}])
    return settings, api_client(settings), job["id"]


def test_events_are_paged_with_the_cursor(world):
    _, client, job_id = world
    first = client.get(f"/api/v1/jobs/{job_id}/events?limit=3").get_json()
    assert [e["type"] for e in first["events"]] == ["submitted", "queued", "claimed"]
    rest = client.get(f"/api/v1/jobs/{job_id}/events?after={first['next']}").get_json()
    assert [e["type"] for e in rest["events"]] == [
        "preempted",
        "released",
        "requeued",
        "claimed",
    ]
    assert rest["events"][-1]["attempt"] == 2 and rest["events"][-1]["data"]["worker"] == "w2"
    empty = client.get(f"/api/v1/jobs/{job_id}/events?after={rest['next']}").get_json()
    assert empty == {"events": [], "next": rest["next"]}


def test_log_lines_of_one_attempt_or_all(world):
    _, client, job_id = world
    both = client.get(f"/api/v1/jobs/{job_id}/logs").get_json()
    assert [line["message"] for line in both["lines"]] == ["from 1", "from 2"]
    one = client.get(f"/api/v1/jobs/{job_id}/logs?attempt=2").get_json()
    assert [line["message"] for line in one["lines"]] == ["from 2"]
    later = client.get(f"/api/v1/jobs/{job_id}/logs?after={both['lines'][0]['id']}").get_json()
    assert [line["attempt"] for line in later["lines"]] == [2]


@pytest.mark.parametrize(
    "query",
    ["events?after=-1", "events?after=x", "logs?attempt=0", "logs?after=99999999999999999999"],
)
def test_a_bad_parameter_is_a_400_naming_it(world, query):
    _, client, job_id = world
    resp = client.get(f"/api/v1/jobs/{job_id}/{query}")
    assert resp.status_code == 400
    assert resp.get_json()["error"]["details"]["parameter"] in query


def test_another_projects_job_is_a_404(world):
    settings, client, job_id = world
    secret = TokenStore(settings.database_url).create("p2")[1]
    for route in ("events", "logs"):
        resp = client.get(
            f"/api/v1/jobs/{job_id}/{route}", headers={"Authorization": f"Bearer {secret}"}
        )
        assert resp.status_code == 404 and resp.get_json()["error"]["code"] == "not_found"
        assert client.get(f"/api/v1/jobs/{'0' * 32}/{route}").status_code == 404
