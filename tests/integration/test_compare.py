"""Compare runs: the metrics API's buckets (the bands' source) on SQLite and PostgreSQL,
and the compare page in Chromium: overlaid metrics, min-max bands, spec differences."""

from __future__ import annotations

import pytest

from service.store.jobs import JobStore
from service.store.metrics import MetricStore
from tests.integration.test_browser import browser_page, shot  # noqa: F401 - the fixture

SPEC = {
    "name": "a",
    "model": {"config": {"layers": [{"units": 8}, {"units": 3}]}},
    "fit": {"epochs": 2, "batch_size": 16},
    "seed": 1,
}


def rows(steps, kind="batch", scale=1.0, spe=1000):
    return [
        {
            "kind": kind,
            "step": s,
            "epoch": (s - 1) // spe,
            "batch": None if kind == "epoch" else (s - 1) % spe,
            "attempt": 1,
            "logs": {"loss": scale / (s + 1) + (0.3 if s % 97 == 0 else 0.0), "accuracy": s / 5000},
            "wall_time": 1000.0 + s,
        }
        for s in steps
    ]


def test_downsampled_answer_names_each_buckets_extremes(db_url):
    job = JobStore(db_url).create(SPEC, epochs=2, summary=None, max_attempts=3)["id"]
    metrics = MetricStore(db_url)
    metrics.write(job, rows(range(2048)))  # 16 buckets of 128 steps, on block edges
    body = metrics.read(job, "batch", max_points=33, metric="loss")
    assert body["downsampled"] and len(body["buckets"]) == 16
    loss = {r["step"]: r["logs"]["loss"] for r in metrics.read(job, "batch")["rows"]}
    served = {r["step"] for r in body["rows"]}
    for b, (lo, hi) in enumerate(body["buckets"]):
        inside = range(b * 128, (b + 1) * 128)
        assert lo == min(inside, key=lambda s: (loss[s], s))
        assert hi == min(inside, key=lambda s: (-loss[s], s))
        assert {lo, hi} <= served  # both rows are in the answer
    small = metrics.read(job, "batch", max_points=5000)
    assert small["downsampled"] is False and "buckets" not in small


@pytest.mark.slow
def test_compare_page_overlays_runs_with_bands_and_spec_differences(
    stack,
    pg_clean,
    browser_page,  # noqa: F811
):
    jobs, metrics = JobStore(pg_clean), MetricStore(pg_clean)
    long_spec = {**SPEC, "name": "long"}
    short_spec = {**SPEC, "name": "short", "fit": {"epochs": 2, "batch_size": 32}, "seed": 2}
    third_spec = {**SPEC, "name": "third"}
    third_spec["model"] = {"config": {"layers": [{"units": 8}, {"units": 4}]}}
    a = jobs.create(long_spec, epochs=2, summary=None, max_attempts=3, project="test")["id"]
    b = jobs.create(short_spec, epochs=2, summary=None, max_attempts=3, project="test")["id"]
    c = jobs.create(third_spec, epochs=2, summary=None, max_attempts=3, project="test")["id"]
    metrics.write(a, rows(range(1, 5001)))  # more than the page's 1001 points: bands
    metrics.write(b, rows(range(1, 301), scale=2.0))
    metrics.write(c, rows(range(1, 101), scale=3.0))
    for job in (a, b, c):
        metrics.write(job, rows([1000, 2000], kind="epoch"))
    stack.start_api()
    page = browser_page
    page.goto(f"{stack.api_url}/compare?jobs={a},{b}&kind=batch&metric=loss")
    page.fill("#token-input", stack.token)
    page.click("#token-save")
    shown = f"{a},{b}|batch|loss"
    page.wait_for_function(f"document.getElementById('compare-chart').dataset.shown === '{shown}'")
    chart = page.locator("#compare-chart")
    assert chart.get_attribute("data-lines") == "2"
    assert chart.get_attribute("data-bands") == "1"  # the long run only
    traces = page.evaluate(
        "Array.from(document.getElementById('compare-chart').data, (t) => ({name: t.name, "
        "n: t.x.length, fill: t.fill || null}))"
    )
    assert [t["fill"] for t in traces] == [None, "tonexty", None, None]
    assert traces[2]["n"] <= 1001 and traces[3]["n"] == 300
    diff = {
        r.get_attribute("data-path"): r.locator("td").all_inner_texts()[1:]
        for r in page.locator("#diff-table tbody tr[data-path]").all()
    }
    assert diff == {
        "name": ['"long"', '"short"'],
        "fit.batch_size": ["16", "32"],
        "seed": ["1", "2"],
    }
    shot(page, "compare")

    page.check(f'input.pick[data-job-id="{c}"]')
    shown = f"{a},{b},{c}|batch|loss"
    page.wait_for_function(f"document.getElementById('compare-chart').dataset.shown === '{shown}'")
    assert chart.get_attribute("data-lines") == "3"
    paths = page.locator("#diff-table tbody tr[data-path]").evaluate_all(
        "(rows) => rows.map((r) => r.dataset.path)"
    )
    assert "model.config.layers[1].units" in paths
    assert f"jobs={a}%2C{b}%2C{c}" in page.url

    page.select_option("#compare-kind", "epoch")
    shown = f"{a},{b},{c}|epoch|loss"
    page.wait_for_function(f"document.getElementById('compare-chart').dataset.shown === '{shown}'")
    assert chart.get_attribute("data-bands") == "0"
    page.select_option("#compare-metric", "accuracy")
    page.wait_for_function(
        "document.getElementById('compare-chart').dataset.shown.endsWith('|epoch|accuracy')"
    )
