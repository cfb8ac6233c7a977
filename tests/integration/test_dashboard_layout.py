"""The job page in Debian's Chromium at 1400 px and 800 px: charts use the width, legends
stay off the curves, positions are numbered as the CLI numbers them."""

from __future__ import annotations

import math
import threading

import pytest

from fitfleet.formatting import position
from tests.integration.test_browser import ARGS, CHROMIUM, shot
from tests.specs import blobs, mlp_spec, npz_bytes

pytestmark = pytest.mark.slow

EPOCHS, SPE = 6, 10


@pytest.fixture
def job_page(tmp_path, sqlite_url):
    """(base URL, token, job id) of an API in this process with one job's metric rows."""
    from werkzeug.serving import make_server

    from fitfleet import Client
    from service.core.config import Settings
    from service.store.metrics import MetricStore
    from service.store.tokens import TokenStore
    from service.web.app import create_app

    settings = Settings.from_env(
        {},
        database_url=sqlite_url,
        broker_url="filesystem://",
        storage_url=(tmp_path / "store").as_uri(),
        home=str(tmp_path),
    )
    (tmp_path / "train.npz").write_bytes(npz_bytes(*blobs()))
    server = make_server("127.0.0.1", 0, create_app(settings), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        token = TokenStore(settings.database_url).create("demo")[1]
        job = (
            Client(url, token=token)
            .submit(mlp_spec((tmp_path / "train.npz").as_uri(), epochs=EPOCHS))
            .job
        )
        rows = []
        for e in range(EPOCHS):
            for b in range(SPE):
                step = e * SPE + b + 1
                rows.append(
                    {
                        "kind": "batch",
                        "step": step,
                        "epoch": e,
                        "batch": b,
                        "attempt": 1,
                        "wall_time": float(step),
                        "logs": {"accuracy": 1 - 0.9 / step, "loss": 2.0 / step},
                    }
                )
            rows.append(
                {
                    "kind": "epoch",
                    "step": (e + 1) * SPE,
                    "epoch": e,
                    "batch": None,
                    "attempt": 1,
                    "wall_time": float((e + 1) * SPE),
                    # the curves end high (accuracy) and low (loss): where legends sat
                    "logs": {
                        "accuracy": 1 - 0.5 / (e + 1),
                        "loss": 1.0 / (e + 1),
                        "val_accuracy": 0.98 - 0.5 / (e + 1),
                        "val_loss": 1.05 / (e + 1),
                    },
                }
            )
        MetricStore(settings.database_url).write(job["id"], rows)
        yield url, token, job["id"]
    finally:
        server.shutdown()
        thread.join(10)


GEOMETRY = """() => [...document.querySelectorAll('.charts')].map((box) => ({
  box: box.getBoundingClientRect().toJSON(),
  charts: [...box.querySelectorAll('.chart')].map((c) => {
    const legend = c.querySelector('g.legend');
    return {
      id: c.id, rect: c.getBoundingClientRect().toJSON(),
      plot: c.querySelector('rect.nsewdrag').getBoundingClientRect().toJSON(),
      svg: c.querySelector('svg.main-svg').getBoundingClientRect().toJSON(),
      legend: legend ? legend.getBoundingClientRect().toJSON() : null,
    };
  }),
}))"""


def _overlap(a: dict, b: dict) -> bool:
    return (
        a["left"] < b["right"]
        and b["left"] < a["right"]
        and a["top"] < b["bottom"]
        and b["top"] < a["bottom"]
    )


@pytest.mark.parametrize("width", [1400, 800])
def test_charts_use_the_width_and_keep_legends_off_the_curves(job_page, width):
    from playwright.sync_api import sync_playwright

    url, token, job_id = job_page
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": 1000})
            page.set_default_timeout(60_000)
            page.goto(f"{url}/jobs/{job_id}")
            assert page.get_attribute("#token-input", "placeholder") == "ff_..."
            page.fill("#token-input", token)
            page.click("#token-save")
            for chart in ("#epoch-chart-loss", "#epoch-chart-accuracy", "#batch-chart-loss"):
                page.wait_for_function(f"+document.querySelector('{chart}')?.dataset.points > 0")
            page.wait_for_timeout(500)  # a resize after the last chart settles
            geometry = page.evaluate(GEOMETRY)  # before the screenshot, which resizes the page
            shot(page, f"layout-{width}")
            cases = [(s, 26, 5) for s in (0, 1, 25, 26, 27, 129, 130)] + [(7, None, 3)]
            js = page.evaluate(
                "(cases) => cases.map(([s, n, e]) => FF.position(s, n, e).text)", cases
            )
        finally:
            browser.close()

    assert js == [position(*c) for c in cases]  # one numbering, in Python and in the page
    for group in geometry:
        box, charts = group["box"], group["charts"]
        if box["height"] and not charts and group is geometry[-1]:
            continue  # system metrics: this job has no samples
        assert len(charts) == 2, charts
        per_row = 2 if width >= 2 * 420 + 12 + 48 else 1
        rows = math.ceil(len(charts) / per_row)
        assert len({round(c["rect"]["top"]) for c in charts}) == rows
        for c in charts:  # each row is filled: its charts share the whole width
            assert c["rect"]["width"] >= (box["width"] - 12 * (per_row - 1)) / per_row - 2
            assert c["plot"]["width"] >= 0.75 * c["rect"]["width"]
            # Plotly drew the chart inside its own cell, not over its neighbour
            assert c["svg"]["left"] >= c["rect"]["left"] - 1, c
            assert c["svg"]["right"] <= c["rect"]["right"] + 1, c
            assert c["plot"]["right"] <= c["rect"]["right"] + 1, c
        assert box["width"] >= width - 2 * 24 - 20  # the page's padding (and scrollbar) only
        for c in charts:
            if c["legend"] is None:
                continue
            assert not _overlap(c["legend"], c["plot"]), c  # above the plot area, never on it
            assert (
                c["rect"]["left"]
                <= c["legend"]["left"]
                <= c["legend"]["right"]
                <= c["rect"]["right"] + 1
            )
    assert any(c["legend"] for g in geometry for c in g["charts"])  # training vs validation
