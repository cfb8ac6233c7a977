"""The dashboard's server side: pages and the Plotly bundle, job detail, ETags, downloads."""

from __future__ import annotations

import hashlib
import time

import pytest

from service.core.config import Settings
from service.store.jobs import JobStore
from service.store.metrics import MetricStore
from service.web.app import create_app

SUMMARY = {
    "name": "tiny",
    "class_name": "Sequential",
    "layers": [{"name": "dense", "class_name": "Dense", "output_shape": [None, 8], "params": 40}],
    "total_params": 40,
    "trainable_params": 40,
    "non_trainable_params": 0,
}


@pytest.fixture
def settings(tmp_path, sqlite_url) -> Settings:
    return Settings.from_env(
        {},
        database_url=sqlite_url,
        broker_url="filesystem://",
        storage_url=(tmp_path / "store").as_uri(),
        home=str(tmp_path),
        auth="off",
    )


@pytest.fixture
def client(settings):
    return create_app(settings).test_client()


def new_job(settings, epochs: int = 4) -> str:
    spec = {"name": "dash", "model": {}, "queue": "default"}
    return JobStore(settings.database_url).create(
        spec, epochs=epochs, summary=SUMMARY, max_attempts=3
    )["id"]


def batch_rows(steps, attempt: int, t0: float, per_step: float) -> list[dict]:
    return [
        {
            "kind": "batch",
            "step": s,
            "epoch": (s - 1) // 25,
            "batch": (s - 1) % 25,
            "attempt": attempt,
            "logs": {"loss": 1.0 / s},
            "wall_time": t0 + s * per_step,
        }
        for s in steps
    ]


@pytest.mark.parametrize("path", ["/", "/fleet", "/jobs/0123456789abcdef"])
def test_pages_are_served_without_a_token_and_load_plotly(tmp_path, sqlite_url, path):
    settings = Settings.from_env(
        {},
        database_url=sqlite_url,
        broker_url="filesystem://",
        storage_url=(tmp_path / "s").as_uri(),
        home=str(tmp_path),
        auth="on",
    )
    client = create_app(settings).test_client()
    page = client.get(path)
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "/dashboard/static/common.js" in html and 'id="token-dialog"' in html
    if path.startswith("/jobs/"):
        assert "/vendor/plotly.min.js" in html and 'data-job-id="0123456789abcdef"' in html
    assert client.get("/api/v1/fleet").status_code == 401  # the API itself needs a token
    assert client.get("/dashboard/static/common.js").status_code == 200


def test_plotly_bundle_comes_from_the_plotly_package(client):
    response = client.get("/vendor/plotly.min.js")
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    assert b"plotly" in response.data[:2000].lower() and len(response.data) > 1_000_000
    assert response.cache_control.max_age == 86400
    again = client.get("/vendor/plotly.min.js", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304


def test_scripts_send_the_bearer_token_and_keep_it_in_session_storage(client):
    common = client.get("/dashboard/static/common.js").get_data(as_text=True)
    assert "sessionStorage" in common and '"Bearer "' in common
    assert "localStorage" not in common  # the token never outlives the tab


def test_metrics_etag_answers_304_until_something_is_written(client, settings):
    job_id = new_job(settings)
    url = f"/api/v1/jobs/{job_id}/metrics?kind=batch&after=-1"
    first = client.get(url)
    assert first.status_code == 200 and first.get_json()["rows"] == []
    etag = first.headers["ETag"]
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
    other = client.get(url + "&max_points=10", headers={"If-None-Match": etag})
    assert other.status_code == 200  # another question, another tag
    MetricStore(settings.database_url).write(job_id, batch_rows(range(1, 6), 1, 0.0, 1.0))
    fresh = client.get(url, headers={"If-None-Match": etag})
    assert fresh.status_code == 200 and len(fresh.get_json()["rows"]) == 5
    assert fresh.headers["ETag"] != etag
    assert client.get(url, headers={"If-None-Match": fresh.headers["ETag"]}).status_code == 304


def test_metrics_route_downsamples_by_the_named_metric(client, settings):
    job_id = new_job(settings)
    rows = batch_rows(range(1, 3001), 1, 0.0, 1.0)
    rows[1233]["logs"]["loss"] = 42.0  # step 1234
    MetricStore(settings.database_url).write(job_id, rows)
    body = client.get(f"/api/v1/jobs/{job_id}/metrics?kind=batch&max_points=50").get_json()
    steps = [r["step"] for r in body["rows"]]
    assert body["downsampled"] and body["metric"] == "loss"
    assert len(steps) <= 50 and steps[-1] == 3000 and 1234 in steps
    bad = client.get(f"/api/v1/jobs/{job_id}/metrics?kind=batch&max_points=5&metric=a'b")
    assert bad.status_code == 400


def test_detail_has_throughput_eta_and_the_attempts_timeline(client, settings):
    jobs, metrics = JobStore(settings.database_url), MetricStore(settings.database_url)
    job_id = new_job(settings, epochs=4)
    first = jobs.claim(job_id, "w1:1", 30)
    jobs.renew(
        job_id, first.attempt_id, 30, {"epoch": 1, "batch": 15, "step": 40, "steps_per_epoch": 25}
    )
    metrics.write(job_id, batch_rows(range(1, 41), 1, 1000.0, 0.1))
    assert jobs.release(job_id, first.attempt_id, "preempted")
    second = jobs.claim(job_id, "w2:2", 30)
    jobs.mark_resumed(job_id, second.attempt_id, 30)
    jobs.renew(
        job_id, second.attempt_id, 30, {"epoch": 2, "batch": 10, "step": 60, "steps_per_epoch": 25}
    )
    metrics.write(job_id, batch_rows(range(31, 61), 2, 5000.0, 0.5))  # 2 steps/s now

    body = client.get(f"/api/v1/jobs/{job_id}/detail").get_json()
    progress = body["progress"]
    assert progress["total_steps"] == 100 and progress["percent"] == 60.0
    assert progress["steps_per_second"] == pytest.approx(2.0)
    assert progress["eta_seconds"] == pytest.approx(20.0)
    attempts = body["attempts"]
    assert [a["number"] for a in attempts] == [1, 2]
    assert [a["resumed_from_step"] for a in attempts] == [0, 30]
    assert [a["last_step"] for a in attempts] == [40, 60]
    assert [a["steps_redone"] for a in attempts] == [0, 10]
    assert body["resume_steps"] == [30]
    assert body["summary"]["layers"][0]["output_shape"] == [None, 8]
    assert body["job"]["id"] == job_id and body["checkpoints"] == []
    assert client.get("/api/v1/jobs/nope/detail").status_code == 404


def test_checkpoint_files_download_and_unknown_ones_are_404(client, settings, tmp_path):
    jobs = JobStore(settings.database_url)
    job_id = new_job(settings)
    claim = jobs.claim(job_id, "w1:1", 30)
    folder = tmp_path / "store" / "ck" / "000000000025"
    folder.mkdir(parents=True)
    payload = b"keras-zip-bytes" * 100
    (folder / "model.keras").write_bytes(payload)
    digest = hashlib.sha256(payload).hexdigest()
    jobs.commit_checkpoint(
        job_id,
        claim.attempt_id,
        {
            "step": 25,
            "epoch": 0,
            "batch": 25,
            "uri": folder.as_uri(),
            "files": {"model.keras": {"sha256": digest, "bytes": len(payload)}},
            "bytes": len(payload),
            "sha256": digest,
            "logs": {"loss": 0.5},
        },
    )
    got = client.get(f"/api/v1/jobs/{job_id}/checkpoints/25/model.keras")
    assert got.status_code == 200 and got.data == payload
    assert "attachment" in got.headers["Content-Disposition"]
    assert client.get(f"/api/v1/jobs/{job_id}/checkpoints/25/state.npz").status_code == 404
    assert client.get(f"/api/v1/jobs/{job_id}/checkpoints/26/model.keras").status_code == 404
    detail = client.get(f"/api/v1/jobs/{job_id}/detail").get_json()
    assert [c["step"] for c in detail["checkpoints"]] == [25]


def test_detail_has_no_rate_before_two_batches(client, settings):
    jobs = JobStore(settings.database_url)
    job_id = new_job(settings)
    claim = jobs.claim(job_id, "w1:1", 30)
    MetricStore(settings.database_url).write(
        job_id, batch_rows([1], claim.number, time.time(), 0.1)
    )
    body = client.get(f"/api/v1/jobs/{job_id}/detail").get_json()
    assert body["progress"]["steps_per_second"] is None
    assert body["progress"]["eta_seconds"] is None


def test_poll_cache_keeps_one_answer_per_question_and_stays_bounded():
    from service.web.pollcache import PollCache

    cache = PollCache(max_entries=3, max_bytes=100, max_item_bytes=60)
    assert cache.answer(("j", "q1"), "v1", lambda: b"x" * 40) == ("v1", b"x" * 40)
    assert cache.answer(("j", "q1"), "v1", lambda: b"never") == ("v1", b"x" * 40)
    assert cache.hits == 1 and cache.misses == 1
    assert cache.answer(("j", "q1"), "v2", lambda: b"n" * 40) == ("v2", b"n" * 40)  # new version
    cache.answer(("j", "q2"), "v1", lambda: b"y" * 40)
    cache.answer(("j", "q3"), "v1", lambda: b"z" * 40)  # 120 bytes > 100: the oldest goes
    assert len(cache) == 2
    assert cache.answer(("j", "q1"), "v2", lambda: b"again") == ("v2", b"again")
    cache.answer(("j", "big"), "v1", lambda: b"b" * 61)  # too large to keep
    assert cache.answer(("j", "big"), "v1", lambda: b"new") == ("v1", b"new")


def test_repeated_polls_between_writes_are_answered_from_the_cache(client, settings):
    from service.web.api.results import POLLS

    job_id = new_job(settings)
    MetricStore(settings.database_url).write(job_id, batch_rows(range(1, 101), 1, 0.0, 1.0))
    url = f"/api/v1/jobs/{job_id}/metrics?kind=batch&max_points=20"
    first = client.get(url)
    hits = POLLS.hits
    second = client.get(url)
    assert POLLS.hits == hits + 1 and second.data == first.data
    MetricStore(settings.database_url).write(job_id, batch_rows([101], 1, 0.0, 1.0))
    third = client.get(url).get_json()
    assert third["rows"][-1]["step"] == 101  # a write changes the tag: no stale answer


def test_poll_cache_computes_once_and_serves_the_previous_answer_meanwhile():
    import threading

    from service.web.pollcache import PollCache

    cache, calls, gate = PollCache(), [], threading.Event()

    def compute() -> bytes:
        calls.append(1)
        gate.wait(5)
        return b"new"

    out: list = []

    def ask(version: str) -> None:
        out.append(cache.answer(("j", "q"), version, compute))

    first = [threading.Thread(target=ask, args=("v1",)) for _ in range(6)]
    for t in first:
        t.start()
    time.sleep(0.2)
    gate.set()
    for t in first:
        t.join(5)
    assert out == [("v1", b"new")] * 6 and len(calls) == 1  # one computation for six askers
    gate.clear()
    out.clear()
    leader = threading.Thread(target=ask, args=("v2",))
    leader.start()
    time.sleep(0.2)
    ask("v2")  # while v2 is computed, the v1 answer comes back at once, with its own tag
    assert out == [("v1", b"new")]
    gate.set()
    leader.join(5)
    assert out[-1] == ("v2", b"new") and len(calls) == 2
