"""The job page charts a job's system metrics (CPU, memory, GPUs), in Chromium."""

from __future__ import annotations

import pytest

from service.store.jobs import JobStore
from service.store.metrics import MetricStore
from tests.integration.test_browser import browser_page, shot  # noqa: F401 - the fixture

pytestmark = pytest.mark.slow


def test_job_page_charts_system_metrics(stack, pg_clean, browser_page):  # noqa: F811
    job = JobStore(pg_clean).create(
        {"name": "sampled", "model": {}}, epochs=1, summary=None, max_attempts=1, project="test"
    )["id"]
    samples = [
        {
            "kind": "system",
            "step": 10 * i,
            "epoch": 0,
            "batch": None,
            "attempt": 1,
            "logs": {
                "cpu_percent": 95.0 + i,
                "memory_rss_bytes": 5e8 + i * 1e6,
                "gpu0_utilization_percent": 80.0,
                "gpu0_memory_used_bytes": 2e9,
            },
            "wall_time": 1000.0 + 10 * i,
        }
        for i in range(1, 13)
    ]
    MetricStore(pg_clean).write(job, samples)
    stack.start_api()
    page = browser_page
    page.goto(f"{stack.api_url}/jobs/{job}")
    page.fill("#token-input", stack.token)
    page.click("#token-save")
    for name in ("cpu_percent", "memory_rss_bytes", "gpu0_utilization_percent"):
        page.wait_for_function(
            f"+document.querySelector('#system-chart-{name}')?.dataset.points === 12"
        )
    x = page.evaluate("Array.from(document.querySelector('#system-chart-cpu_percent').data[0].x)")
    assert x == [10 * i for i in range(1, 13)]
    shot(page, "job-system")
