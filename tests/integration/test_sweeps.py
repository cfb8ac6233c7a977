"""Sweeps with real processes (API, reaper, two workers) on PostgreSQL, Redis and moto's S3:
a sweep finishes with its best trial's model loading in plain Keras; successive halving
trains fewer steps than no pruner on the same trials; a SIGKILLed worker loses and
duplicates no trial and its trial resumes bit-identical with the same verdicts; cancel
stops running trials within seconds and starts no new ones."""

from __future__ import annotations

import signal
import time
import uuid
from datetime import datetime

import numpy as np
import pytest

from fitfleet import Client
from fitfleet.cli import main
from testbed import sweeps
from testbed.services import create_pg_database, drop_pg_database
from tests.conftest import REDIS_URL
from tests.integration import test_browser
from tests.integration.jobs_helpers import metric_rows, model_weights, upload_blobs
from tests.integration.stack import Stack, base_env, wait_for

pytestmark = pytest.mark.slow
browser_page = test_browser.browser_page  # the Chromium page fixture
keras = pytest.importorskip("keras")


@pytest.fixture(scope="module")
def stack(s3, tmp_path_factory):
    """One stack for the module: API, reaper and two workers on a database of its own."""
    import redis

    from service.store.migrate import upgrade

    url = create_pg_database()
    upgrade(url)
    redis.Redis.from_url(REDIS_URL).flushdb()
    home = tmp_path_factory.mktemp("sweeps")
    env = base_env(
        database_url=url,
        broker_url=REDIS_URL,
        storage_url=s3.url(f"sweeps/{uuid.uuid4().hex[:12]}"),
        home=home / "home",
        aws=s3.env(),
        # A message another session's worker took from a shared Redis database is sent
        # again soon, not after the default two minutes.
        FITFLEET_REDISPATCH_SECONDS="5",
    )
    s = Stack(env, home / "logs")
    try:
        s.start_api()
        s.start_reaper()
        s.start_worker("w1")
        s.start_worker("w2")
        yield s
    finally:
        s.stop_all()
        drop_pg_database(url)


def jobs_of(stack, sweep) -> list[dict]:
    return [stack.job(t["job_id"]) for t in sweep["trials"] if t["job_id"]]


def when(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def most_at_once(jobs) -> int:
    """The most jobs that were running at the same moment."""
    spans = [(when(j["started_at"]), when(j["finished_at"])) for j in jobs if j["started_at"]]
    return max(sum(a <= start < b for a, b in spans) for start, _ in spans)


def test_a_sweep_of_eight_trials_two_at_a_time_finishes(stack, s3, tmp_path):
    spec = sweeps.sweep_spec(upload_blobs(s3), epochs=2, pruner="median")
    spec["sampler"] = {"name": "tpe", "n_startup_trials": 4}
    sweep = sweeps.wait_ended(stack, sweeps.submit(stack, spec)["id"])
    assert sweep["state"] == "finished"
    trials = sweep["trials"]
    assert [t["number"] for t in trials] == list(range(8))
    assert len({t["job_id"] for t in trials}) == 8
    assert {t["state"] for t in trials} <= {"succeeded", "pruned"}, trials
    jobs = jobs_of(stack, sweep)
    assert {j["state"] for j in jobs} == {"succeeded"}, [j["error"] for j in jobs]
    assert most_at_once(jobs) <= 2, [(j["started_at"], j["finished_at"]) for j in jobs]
    done = [t for t in trials if t["state"] == "succeeded"]
    assert sweep["best"]["number"] == min(done, key=lambda t: t["objective"])["number"]
    best_job = stack.job(sweep["best"]["job_id"])
    rows = metric_rows(stack, best_job["id"], "epoch")
    assert rows[-1]["logs"]["val_loss"] == pytest.approx(sweep["best"]["objective"])
    for path, value in sweep["best"]["params"].items():
        assert 0 <= value <= 0.6 if path == sweeps.DROPOUT else 1e-4 <= value <= 0.1
    weights = model_weights(stack, best_job["id"], tmp_path)  # plain keras.models.load_model
    assert weights and all(np.isfinite(w).all() for w in weights)
    handle = Client(stack.api_url, token=stack.token).get_sweep(sweep["id"])
    loaded = handle.load_best_model()
    for a, b in zip(loaded.weights, weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b)
    path = tmp_path / "best.keras"
    args = ["sweep", "best", sweep["id"], "-o", str(path), "--api", stack.api_url]
    assert main([*args, "--token", stack.token]) == 0
    assert len(keras.models.load_model(path).weights) == len(weights)


def test_successive_halving_trains_fewer_steps_on_the_same_trials(stack, s3):
    data = upload_blobs(s3)
    common = {"epochs": 3, "max_trials": 6, "max_parallel": 1, "sampler": {"name": "random"}}
    halving = sweeps.submit(stack, sweeps.sweep_spec(data, pruner="successive_halving", **common))
    full = sweeps.submit(stack, sweeps.sweep_spec(data, pruner="none", **common))
    halving = sweeps.wait_ended(stack, halving["id"])
    full = sweeps.wait_ended(stack, full["id"])
    assert [t["params"] for t in halving["trials"]] == [t["params"] for t in full["trials"]]
    assert {t["state"] for t in full["trials"]} == {"succeeded"}
    pruned = [t for t in halving["trials"] if t["state"] == "pruned"]
    assert pruned, halving["trials"]
    assert halving["steps"] < full["steps"]
    spe = stack.job(full["trials"][0]["job_id"])["progress"]["steps_per_epoch"]
    assert full["steps"] == 6 * 3 * spe
    for trial in pruned:
        job = stack.job(trial["job_id"])
        assert job["stopped"]["by"] == "pruner"
        assert job["stopped"]["epoch"] == trial["pruned_epoch"] < 3
        assert trial["steps"] == job["progress"]["step"] == trial["pruned_epoch"] * spe
        assert len(metric_rows(stack, job["id"], "epoch")) == trial["pruned_epoch"]  # kept
        later = [t for t in halving["trials"] if t["number"] == trial["number"] + 1]
        if later:  # its slot was given to the next trial as soon as it stopped
            assert when(later[0]["created_at"]) >= when(job["finished_at"]) - 0.01
    print(f"steps: successive halving {halving['steps']}, none {full['steps']}")


def test_cancel_stops_running_trials_within_seconds_and_starts_none(stack, s3):
    spec = sweeps.sweep_spec(upload_blobs(s3, n=2000), epochs=40, batch_size=8, max_trials=6)
    sweep = sweeps.submit(stack, spec)

    def both_training():
        jobs = jobs_of(stack, sweeps.get(stack, sweep["id"]))
        return len(jobs) == 2 and all(j["progress"]["step"] > 0 for j in jobs)

    wait_for(both_training, 120, 0.2, "two trials training")
    asked = time.monotonic()
    status, _ = stack.http("POST", f"/api/v1/sweeps/{sweep['id']}/cancel")
    assert status == 202
    ended = sweeps.wait_ended(stack, sweep["id"], timeout=30)
    assert time.monotonic() - asked < 15
    assert ended["state"] == "cancelled"
    assert [t["state"] for t in ended["trials"]] == ["cancelled", "cancelled"]
    assert {j["state"] for j in jobs_of(stack, ended)} == {"cancelled"}
    time.sleep(2)  # reaper passes
    assert len(sweeps.get(stack, sweep["id"])["trials"]) == 2


def test_a_sigkilled_worker_loses_and_duplicates_no_trial(stack, s3, tmp_path):
    spec = sweeps.sweep_spec(
        upload_blobs(s3, n=800, features=16),
        features=16,
        hidden=32,
        epochs=3,
        batch_size=8,
        checkpoint={"every_epoch": False, "every_n_batches": 30},
        pruner="median",
        max_trials=2,
        max_parallel=1,
    )
    sweep = sweeps.submit(stack, spec)
    first = sweep["trials"][0]

    def past_first_epoch():
        job = stack.job(first["job_id"])
        return job if job["worker"] and job["progress"]["step"] > 100 else None

    job = wait_for(past_first_epoch, 120, 0.05, "trial 0 past its first epoch")
    before = sweeps.get(stack, sweep["id"])["trials"][0]["verdicts"]
    assert before and before[0]["epoch"] == 0
    name = job["worker"].split("@")[0]
    victim = next(n for n in ("w1", "w2") if name.startswith(n))
    stack.kill(victim, signal.SIGKILL)
    stack.procs[victim].wait(10)
    stack.start_worker(victim)
    ended = sweeps.wait_ended(stack, sweep["id"])
    assert ended["state"] == "finished"
    assert [t["number"] for t in ended["trials"]] == [0, 1]
    assert len({t["job_id"] for t in ended["trials"]}) == 2
    resumed = ended["trials"][0]
    assert resumed["job_id"] == first["job_id"]
    _, tried = stack.http("GET", f"/api/v1/jobs/{first['job_id']}/attempts")
    assert [a["state"] for a in tried["attempts"]] == ["lost", "succeeded"]
    # The same run as one of the same parameters that nothing interrupted, verdicts alike.
    trained = stack.job(first["job_id"])
    status, plain = stack.http("POST", "/api/v1/jobs", trained["spec"])
    assert status == 201, plain
    ref = stack.wait_state(plain["id"], ["succeeded", "failed"], timeout=300)
    assert ref["state"] == "succeeded"
    ours = model_weights(stack, first["job_id"], tmp_path)
    for a, b in zip(ours, model_weights(stack, ref["id"], tmp_path), strict=True):
        np.testing.assert_array_equal(a, b)
    epochs = metric_rows(stack, first["job_id"], "epoch")
    assert [r["logs"] for r in epochs] == [
        r["logs"] for r in metric_rows(stack, ref["id"], "epoch")
    ]
    assert resumed["state"] == "succeeded"
    assert resumed["objective"] == pytest.approx(epochs[-1]["logs"]["val_loss"])
    verdicts = resumed["verdicts"]
    assert [v["epoch"] for v in verdicts] == [0, 1, 2]  # each decided once
    assert verdicts[: len(before)] == before  # the ones made before the kill, untouched
    assert [v["value"] for v in verdicts] == [r["logs"]["val_loss"] for r in epochs]
    assert not any(v["prune"] for v in verdicts)


def test_the_sweep_page_in_chromium(stack, s3, browser_page):
    spec = sweeps.sweep_spec(upload_blobs(s3), epochs=2, max_trials=4, pruner="median")
    sweep = sweeps.submit(stack, spec)
    page = browser_page
    page.goto(f"{stack.api_url}/")
    page.fill("#token-input", stack.token)
    page.click("#token-save")
    page.click("#sweeps-link")  # the job list links to the sweeps
    page.wait_for_url("**/sweeps")
    page.click(f'tr[data-sweep-id="{sweep["id"]}"] a')
    page.wait_for_url(f"**/sweeps/{sweep['id']}")
    page.wait_for_selector('#sweep[data-state="finished"]', timeout=180_000)
    page.wait_for_function(
        "+document.querySelector('#objective-chart').dataset.points === 4", timeout=30_000
    )
    ended = sweeps.get(stack, sweep["id"])
    rows = page.locator("#trials-body tr")
    assert rows.count() == 4
    assert page.get_attribute("#parcoords-chart", "data-points") == "4"
    assert page.locator("#parcoords-chart .parcoords").count() == 1  # Plotly drew it
    epochs = sum(len(t["verdicts"]) for t in ended["trials"])
    assert 0 < int(page.get_attribute("#curves-chart", "data-points")) <= epochs
    assert page.get_attribute("#best-trial", "data-number") == str(ended["best"]["number"])
    best_row = page.locator(f'#trials-body tr[data-number="{ended["best"]["number"]}"]')
    assert best_row.get_attribute("class") == "best"
    assert "learning_rate" in page.inner_text("#trials-head")
    assert page.locator("#cancel-sweep").is_hidden()
    test_browser.shot(page, "sweep")
