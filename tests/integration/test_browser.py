"""The dashboard in a real browser: Debian's Chromium driven by Playwright, real processes.

Screenshots go to ``artifacts/`` at the repository root (git-ignored).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.jobs_helpers import upload_blobs
from tests.specs import mlp_spec

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


@pytest.fixture
def browser_page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            page.on("dialog", lambda dialog: dialog.accept())  # the cancel confirmation
            yield page
        finally:
            browser.close()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)


def points(page, chart: str) -> int:
    return int(page.get_attribute(chart, "data-points") or 0)


def test_dashboard_shows_live_training_and_a_cancelled_job(stack, s3, browser_page):
    stack.start_api()  # with authentication on; the stack holds an admin token
    secret = stack.token
    stack.start_worker("w1")
    spec = mlp_spec(upload_blobs(s3, n=2000), epochs=200, batch_size=8)
    spec["name"] = "browser-mlp"
    status, job = stack.http("POST", "/api/v1/jobs", spec)
    assert status == 201, job
    page = browser_page

    page.goto(f"{stack.api_url}/")
    page.fill("#token-input", secret)  # the API asks for a token once per tab
    page.click("#token-save")
    row = page.locator(f'tr[data-job-id="{job["id"]}"]')
    row.wait_for()
    assert "browser-mlp" in row.inner_text()
    page.wait_for_selector(f'tr[data-job-id="{job["id"]}"][data-state="running"]', timeout=180_000)
    shot(page, "jobs")

    page.click(f'tr[data-job-id="{job["id"]}"] a')
    page.wait_for_url(f"**/jobs/{job['id']}")
    chart = "#batch-chart-loss"
    page.wait_for_function(
        f"document.querySelector('{chart}') && +document.querySelector('{chart}')"
        ".dataset.points > 0",
        timeout=120_000,
    )
    first = points(page, chart)
    page.wait_for_function(  # the chart gains points as the job trains
        f"+document.querySelector('{chart}').dataset.points > {first}", timeout=60_000
    )
    assert points(page, chart) > first
    assert page.locator(f"{chart} .main-svg").count() >= 1  # Plotly drew it
    assert page.evaluate("sessionStorage.getItem('fitfleet.token')") == secret
    assert page.locator("#summary-table tbody tr").count() == len(
        spec["model"]["config"]["layers"]
    ) - (1 if _has_input_layer(spec) else 0)
    shot(page, "job-running")

    page.click("#cancel")
    page.wait_for_function(
        "document.getElementById('job-state').textContent === 'cancelled'", timeout=60_000
    )
    assert stack.job(job["id"])["state"] == "cancelled"
    assert page.locator("#cancel").is_hidden()
    shot(page, "job-cancelled")

    page.goto(f"{stack.api_url}/?state=cancelled")
    page.wait_for_selector(f'tr[data-job-id="{job["id"]}"][data-state="cancelled"]')
    page.goto(f"{stack.api_url}/fleet")
    worker = page.locator("#workers-table tbody tr[data-worker]").first
    worker.wait_for()
    assert worker.get_attribute("data-state") in ("idle", "busy")
    assert "default" in page.locator('#queues-table tr[data-queue="default"]').inner_text()
    shot(page, "fleet")


def _has_input_layer(spec: dict) -> bool:
    return spec["model"]["config"]["layers"][0]["class_name"] == "InputLayer"


def test_job_page_marks_resume_points_and_steps_redone(stack, pg_clean, browser_page):
    from service.store.jobs import JobStore
    from service.store.metrics import MetricStore

    jobs, metrics = JobStore(pg_clean), MetricStore(pg_clean)
    job_id = jobs.create(
        {"name": "resumed", "model": {}}, epochs=4, summary=None, max_attempts=3, project="test"
    )["id"]
    first = jobs.claim(job_id, "w1:1", 300)
    jobs.renew(
        job_id,
        first.attempt_id,
        300,
        {"epoch": 1, "batch": 40, "step": 140, "steps_per_epoch": 100},
    )
    metrics.write(job_id, _rows(range(1, 141), 1))
    jobs.release(job_id, first.attempt_id, "preempted")
    second = jobs.claim(job_id, "w2:2", 300)
    jobs.mark_resumed(job_id, second.attempt_id, 100)
    metrics.write(job_id, _rows(range(101, 201), 2))
    stack.start_api()
    page = browser_page
    page.goto(f"{stack.api_url}/jobs/{job_id}")
    page.fill("#token-input", stack.token)
    page.click("#token-save")
    page.wait_for_function("+document.querySelector('#batch-chart-loss')?.dataset.points === 200")
    shapes = page.evaluate("document.querySelector('#batch-chart-loss').layout.shapes")
    assert [(s["x0"], s["x1"]) for s in shapes] == [(100, 100)]
    redone = page.locator("#attempts-table tbody tr").nth(1).locator("td").nth(7)
    assert redone.inner_text() == "40"
    shot(page, "job-resumed")


def _rows(steps, attempt: int) -> list[dict]:
    return [
        {
            "kind": "batch",
            "step": s,
            "epoch": (s - 1) // 100,
            "batch": (s - 1) % 100,
            "attempt": attempt,
            "logs": {"loss": 1.0 / s},
            "wall_time": 1000.0 + s,
        }
        for s in steps
    ]


def test_job_page_shows_nan_and_inf_and_marks_the_divergence(stack, pg_clean, browser_page):
    import math

    from service.store.jobs import JobStore
    from service.store.metrics import MetricStore

    job_id = JobStore(pg_clean).create(
        {"name": "diverged", "model": {}}, epochs=1, summary=None, max_attempts=1, project="test"
    )["id"]
    values = {1: 0.5, 2: 0.25, 3: math.inf, 4: math.nan, 5: -math.inf}
    MetricStore(pg_clean).write(
        job_id,
        [
            {
                "kind": "batch",
                "step": s,
                "epoch": 0,
                "batch": s - 1,
                "attempt": 1,
                "logs": {"loss": v},
                "wall_time": 1000.0 + s,
            }
            for s, v in values.items()
        ],
    )
    stack.start_api()
    page = browser_page
    page.goto(f"{stack.api_url}/jobs/{job_id}")
    page.fill("#token-input", stack.token)
    page.click("#token-save")
    page.wait_for_function("+document.querySelector('#batch-chart-loss')?.dataset.points > 0")
    traces = page.evaluate("""Array.from(document.querySelector('#batch-chart-loss').data,
        (t) => ({x: Array.from(t.x), y: Array.from(t.y, String), text: t.text,
                 hover: t.hovertext}))""")
    line, marks = traces
    assert line["x"] == [1, 2, 3, 4, 5]
    assert line["y"] == ["0.5", "0.25", "Infinity", "NaN", "-Infinity"]  # numbers, not text
    assert marks["x"] == [3, 4, 5] and marks["y"] == ["0.25"] * 3
    assert marks["text"][0] == "diverged @3"
    assert marks["hover"] == [
        "loss = Infinity at step 3",
        "loss = NaN at step 4",
        "loss = -Infinity at step 5",
    ]
    shot(page, "job-diverged")
