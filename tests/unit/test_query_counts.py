"""The job list and the fleet view cost the same number of queries however many jobs exist."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from service.store.db import get_engine
from service.store.jobs import JobStore
from tests.unit.apihelpers import api_client, make_settings


@pytest.fixture
def client_and_url(tmp_path, sqlite_url):
    return api_client(make_settings(tmp_path, sqlite_url)), sqlite_url


def add_jobs(url: str, n: int) -> None:
    jobs = JobStore(url)
    for i in range(n):
        job = jobs.create({"name": f"j{i}", "model": {}}, epochs=1, summary=None, max_attempts=2)
        if i % 2:
            jobs.claim(job["id"], f"w{i}", 600)


def statements(url: str, client, path: str) -> int:
    seen = []

    def count(conn, cursor, statement, *args):
        seen.append(statement)

    engine = get_engine(url)
    event.listen(engine, "before_cursor_execute", count)
    try:
        status = client.get(path).status_code
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert status == 200, path
    return len(seen)


@pytest.mark.parametrize("path", ["/api/v1/jobs?limit=20", "/api/v1/fleet"])
def test_queries_do_not_grow_with_the_jobs(client_and_url, path):
    client, url = client_and_url
    add_jobs(url, 3)
    client.get(path)  # the token's last use is written at most once a minute: not counted
    few = statements(url, client, path)
    add_jobs(url, 40)
    assert statements(url, client, path) == few
