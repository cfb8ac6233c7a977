"""The job page's timeline, goodput and worker log lines in Debian's Chromium."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

import pytest

from tests.integration.test_browser import ARGS, CHROMIUM, shot

pytestmark = pytest.mark.slow


@pytest.fixture
def story_page(tmp_path, sqlite_url):
    """(base URL, token, job id) of an API in this process; the job was claimed, released,
    claimed again and failed, with a log line from its second attempt."""
    from werkzeug.serving import make_server

    from service.core.config import Settings
    from service.store import worklogs
    from service.store.jobs import JobStore
    from service.store.tokens import TokenStore
    from service.web.app import create_app

    settings = Settings.from_env(
        {},
        database_url=sqlite_url,
        broker_url="filesystem://",
        storage_url=(tmp_path / "store").as_uri(),
        home=str(tmp_path),
    )
    jobs = JobStore(sqlite_url)
    job = jobs.create({"name": "story"}, epochs=1, summary=None, max_attempts=3, project="demo")
    first = jobs.claim(job["id"], "w1", 30)
    jobs.release(job["id"], first.attempt_id, "the worker was asked to stop")
    second = jobs.claim(job["id"], "w2", 30)
    row = {"at": datetime.now(timezone.utc), "level": "ERROR", "logger": "fitfleet.worker"}
    message = "job failed\nValueError: Input 0 of layer 'dense' is incompatible with the layer"
    worklogs.write(sqlite_url, job["id"], second.number, [{**row, "message": message}])
    jobs.finish(job["id"], second.attempt_id, "failed", error_code="training_error")
    server = make_server("127.0.0.1", 0, create_app(settings), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        token = TokenStore(sqlite_url).create("demo")[1]
        yield f"http://127.0.0.1:{server.server_port}", token, job["id"]
    finally:
        server.shutdown()
        thread.join(10)


def test_the_job_page_shows_the_timeline_goodput_and_log_lines(story_page):
    from playwright.sync_api import sync_playwright

    url, token, job_id = story_page
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            page.goto(f"{url}/jobs/{job_id}")
            page.fill("#token-input", token)
            page.click("#token-save")
            page.wait_for_function("+document.querySelector('#events-table')?.dataset.rows >= 8")
            page.wait_for_function("document.querySelectorAll('#goodput-bar .part').length > 0")
            types = page.eval_on_selector_all(
                "#events-table tbody tr", "rows => rows.map(r => r.dataset.type)"
            )
            finished = page.inner_text("#events-table tbody tr:last-child")
            log_text = page.inner_text("#logs-table tbody")
            parts = page.eval_on_selector_all(
                "#goodput-table tbody tr", "rows => rows.map(r => r.dataset.part)"
            )
            share = page.inner_text("#goodput-share")
            shot(page, "timeline")
        finally:
            browser.close()
    assert types == [
        "submitted",
        "queued",
        "claimed",
        "preempted",
        "released",
        "requeued",
        "claimed",
        "finished",
    ]
    assert "error_code=training_error" in finished
    assert "is incompatible with the layer" in log_text and "ERROR" in log_text
    assert parts[:2] == ["training", "redoing"] and "queued" in parts and "lost" in parts
    assert share.startswith("goodput ") and "steps redone: 0" in share
