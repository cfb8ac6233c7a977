"""End-to-end fixtures: a stack of real fitfleet processes on PostgreSQL, Redis and moto's S3."""

from __future__ import annotations

import uuid

import pytest
from stack import Stack, base_env


@pytest.fixture
def stack_env(pg_clean, redis_url, s3, tmp_path):
    """The environment of a stack: emptied database, flushed Redis, a fresh S3 prefix."""
    return base_env(
        database_url=pg_clean,
        broker_url=redis_url,
        storage_url=s3.url(f"runs/{uuid.uuid4().hex[:12]}"),
        home=tmp_path / "home",
        aws=s3.env(),
    )


@pytest.fixture
def stack(stack_env, tmp_path):
    """A ``Stack`` whose processes are all stopped, by pid, after the test."""
    s = Stack(stack_env, tmp_path / "logs")
    try:
        yield s
    finally:
        s.stop_all()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach each stack process's log to the report of a failed test."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    for value in getattr(item, "funcargs", {}).values():
        if isinstance(value, Stack):
            for name, text in value.all_logs().items():
                report.sections.append((f"fitfleet {name} log", text))
