"""The HTTP API through Flask's test client: SQLite, a file store and the file broker (real)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

keras = pytest.importorskip("keras")

from service.storage import final_model_key, open_store
from service.store.jobs import JobStore
from service.store.metrics import MetricStore
from service.web.app import create_app
from tests.conftest import free_port
from tests.unit.apihelpers import (
    admin_token,
    api_client,
    base_job_spec,
    functional_json,
    make_settings,
    sequential_json,
)


@pytest.fixture(scope="module")
def models():
    return {"sequential": sequential_json(), "functional": functional_json()}


@pytest.fixture
def job_spec(models, tmp_path):
    return base_job_spec(models, tmp_path)


@pytest.fixture
def settings(tmp_path, sqlite_url):
    return make_settings(tmp_path, sqlite_url)


@pytest.fixture
def client(settings):
    return api_client(settings)


def broker_messages(settings) -> list[str]:
    folder = Path(settings.home) / "broker" / "out"
    return [p.read_text() for p in sorted(folder.glob("*.msg"))] if folder.is_dir() else []


def all_jobs(settings) -> list[dict]:
    return JobStore(settings.database_url).list(None, 500, None)[0]


def assert_envelope(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


def submit(client, spec) -> dict:
    response = client.post("/api/v1/jobs", json=spec)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


# -- submit -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sequential", "functional"])
def test_submit_valid_spec(client, settings, job_spec, models, kind):
    job_spec["model"] = models[kind]
    if kind == "functional":
        job_spec["compile"] = {"loss": "mse"}
        job_spec["data"]["x"] = ["a", "b"]
    response = client.post("/api/v1/jobs", json=job_spec)
    assert response.status_code == 201, response.get_data(as_text=True)
    job = response.get_json()
    assert response.headers["Location"] == f"/api/v1/jobs/{job['id']}"
    assert job["state"] == "queued" and job["attempts"] == 0
    assert job["spec"]["fit"]["batch_size"] == 32  # defaults filled
    stored = JobStore(settings.database_url).get(job["id"])
    assert stored["name"] == job_spec["model"]["config"]["name"]
    summary = JobStore(settings.database_url).summary(job["id"])
    expected = keras.saving.deserialize_keras_object(models[kind]).count_params()
    assert summary["total_params"] == expected
    assert client.get(f"/api/v1/jobs/{job['id']}/summary").get_json() == summary
    messages = broker_messages(settings)
    assert len(messages) == 1
    assert job["id"] in messages[0] and "fitfleet.train" in messages[0]


def test_submit_model_as_json_string(client, job_spec):
    job_spec["model"] = json.dumps(job_spec["model"])
    job = submit(client, job_spec)
    assert job["spec"]["model"]["class_name"] == "Sequential"


def _unknown_layer(spec):
    spec["model"]["config"]["layers"][1]["class_name"] = "Dense42"


def _lambda_layer(spec):
    spec["model"]["config"]["layers"][1]["class_name"] = "Lambda"


def _foreign_module(spec):
    spec["model"]["config"]["layers"][1]["module"] = "my_company.layers"


BAD_SPECS = {
    "unknown layer": (_unknown_layer, "Dense42"),
    "missing model": (lambda s: s.pop("model"), "model is required"),
    "missing loss": (lambda s: s["compile"].pop("loss"), "compile.loss is required"),
    "missing data.train": (lambda s: s["data"].pop("train"), "data.train is required"),
    "Lambda layer": (_lambda_layer, "Lambda objects are not allowed"),
    "module outside keras": (_foreign_module, "my_company.layers"),
    "negative epochs": (lambda s: s["fit"].update(epochs=-3), "fit.epochs must be a positive"),
    "bad URL scheme": (lambda s: s["data"].update(train="http://x/d.npz"), "data.train"),
    "bad optimizer": (lambda s: s["compile"].update(optimizer="adamz"), "compile.optimizer"),
    "unknown key": (lambda s: s.update(epochs=3), "unknown key"),
}


@pytest.mark.parametrize("case", list(BAD_SPECS))
def test_bad_specs_are_refused_and_create_nothing(client, settings, job_spec, case):
    change, fragment = BAD_SPECS[case]
    change(job_spec)
    error = assert_envelope(client.post("/api/v1/jobs", json=job_spec), 422, "invalid_spec")
    assert fragment in error["message"]
    assert all_jobs(settings) == [] and broker_messages(settings) == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "bad_json"),
        (b"", "bad_json"),
        (b'{"model": NaN}', "bad_json"),
        (b"\xff\xfe", "bad_json"),
        (b"[" * 5000 + b"]" * 5000, "bad_json"),
        (b"[1, 2]", "bad_spec"),
    ],
)
def test_malformed_bodies_are_bad_requests(client, settings, body, code):
    response = client.post("/api/v1/jobs", data=body, content_type="application/json")
    assert_envelope(response, 400, code)
    assert all_jobs(settings) == [] and broker_messages(settings) == []


def test_oversized_body_is_413(client, settings, job_spec):
    job_spec["name"] = "big"
    job_spec["model"]["config"]["padding"] = "x" * 150_000
    error = assert_envelope(client.post("/api/v1/jobs", json=job_spec), 413, "payload_too_large")
    assert "100000" in error["message"]
    assert all_jobs(settings) == [] and broker_messages(settings) == []


def test_oversized_body_without_length_is_413(client, settings):
    import io

    body = io.BytesIO(b'{"name": "' + b"x" * 150_000 + b'"}')
    response = client.post(
        "/api/v1/jobs",
        input_stream=body,
        headers={"Transfer-Encoding": "chunked", "Content-Type": "application/json"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert_envelope(response, 413, "payload_too_large")
    assert all_jobs(settings) == []


def test_queue_down_gives_503_and_no_row(tmp_path, sqlite_url, job_spec):
    settings = make_settings(tmp_path, sqlite_url, broker_url=f"redis://127.0.0.1:{free_port()}/0")
    client = api_client(settings)
    assert_envelope(client.post("/api/v1/jobs", json=job_spec), 503, "unavailable")
    assert all_jobs(settings) == []


def test_submit_on_redis_puts_the_task_on_its_queue(tmp_path, sqlite_url, redis_url, job_spec):
    import redis

    settings = make_settings(tmp_path, sqlite_url, broker_url=redis_url)
    queue = f"api-test-{uuid.uuid4().hex[:8]}"
    job_spec.update(queue=queue, priority=0)
    job = submit(api_client(settings), job_spec)
    r = redis.Redis.from_url(redis_url)
    try:
        keys = [k for k in r.keys(f"{queue}*") if r.type(k) == b"list"]
        messages = [m.decode() for k in keys for m in r.lrange(k, 0, -1)]
    finally:
        r.delete(*r.keys(f"{queue}*") or [queue])
        r.close()
    assert len(messages) == 1 and job["id"] in messages[0]


# -- reading jobs ---------------------------------------------------------------------------


def test_list_pages_newest_first(client, job_spec):
    ids = [submit(client, {**job_spec, "name": f"job-{i}"})["id"] for i in range(5)]
    seen, cursor, pages = [], None, 0
    while True:
        query = "/api/v1/jobs?limit=2" + (f"&cursor={cursor}" if cursor else "")
        body = client.get(query).get_json()
        assert len(body["jobs"]) <= 2
        seen += [j["id"] for j in body["jobs"]]
        pages += 1
        cursor = body["next"]
        if cursor is None:
            break
    assert seen == ids[::-1] and pages == 3
    client.post(f"/api/v1/jobs/{ids[1]}/cancel")
    cancelled = client.get("/api/v1/jobs?state=cancelled").get_json()
    assert [j["id"] for j in cancelled["jobs"]] == [ids[1]] and cancelled["next"] is None
    assert len(client.get("/api/v1/jobs?state=queued").get_json()["jobs"]) == 4


@pytest.mark.parametrize(
    "query",
    [
        "state=paused",
        "limit=0",
        "limit=501",
        "limit=ten",
        "cursor=ffffffffffffffffffffffffffffffff",
    ],
)
def test_list_bad_parameters(client, query):
    assert_envelope(client.get(f"/api/v1/jobs?{query}"), 400, "bad_request")


@pytest.mark.parametrize(
    "path", ["", "/attempts", "/checkpoints", "/summary", "/metrics", "/model"]
)
def test_unknown_job_is_404(client, path):
    assert_envelope(client.get(f"/api/v1/jobs/{'0' * 32}{path}"), 404, "not_found")
    assert_envelope(client.get(f"/api/v1/jobs/{'x' * 300}{path}"), 404, "not_found")


def test_get_job_has_the_api_fields(client, job_spec):
    job = submit(client, job_spec)
    got = client.get(f"/api/v1/jobs/{job['id']}").get_json()
    for key in (
        "id",
        "name",
        "state",
        "created_at",
        "started_at",
        "finished_at",
        "attempts",
        "max_attempts",
        "progress",
        "latest_checkpoint",
        "error",
        "spec",
    ):
        assert key in got
    assert got["progress"]["epochs"] == 2 and got["max_attempts"] == 3


def test_cancel_queued_then_again(client, job_spec):
    job = submit(client, job_spec)
    response = client.post(f"/api/v1/jobs/{job['id']}/cancel")
    assert response.status_code == 202 and response.get_json()["state"] == "cancelled"
    assert_envelope(client.post(f"/api/v1/jobs/{job['id']}/cancel"), 409, "conflict")
    assert_envelope(client.post(f"/api/v1/jobs/{'0' * 32}/cancel"), 404, "not_found")


def test_attempts_and_checkpoints(client, settings, job_spec):
    job = submit(client, job_spec)
    url = f"/api/v1/jobs/{job['id']}"
    assert client.get(f"{url}/attempts").get_json() == {"attempts": []}
    jobs = JobStore(settings.database_url)
    claim = jobs.claim(job["id"], "worker-1", 30)
    jobs.commit_checkpoint(
        job["id"],
        claim.attempt_id,
        {
            "step": 4,
            "epoch": 0,
            "batch": 3,
            "uri": "file:///store/jobs/x/checkpoints/4",
            "files": {},
            "bytes": 10,
            "sha256": "0" * 64,
            "logs": {"loss": 0.5},
        },
    )
    attempts = client.get(f"{url}/attempts").get_json()["attempts"]
    assert [(a["number"], a["worker"], a["state"]) for a in attempts] == [
        (1, "worker-1", "running")
    ]
    checkpoints = client.get(f"{url}/checkpoints").get_json()["checkpoints"]
    assert [(c["step"], c["logs"]) for c in checkpoints] == [(4, {"loss": 0.5})]
    assert client.get(url).get_json()["latest_checkpoint"]["step"] == 4


# -- metrics and the model ------------------------------------------------------------------


def test_metrics_cursor(client, settings, job_spec):
    job = submit(client, job_spec)
    url = f"/api/v1/jobs/{job['id']}/metrics"
    rows = [
        {
            "kind": "batch",
            "step": s,
            "epoch": 0,
            "batch": s,
            "attempt": 1,
            "logs": {"loss": 1.0 / (s + 1)},
            "wall_time": float(s),
        }
        for s in range(6)
    ]
    metrics = MetricStore(settings.database_url)
    metrics.write(job["id"], rows[:4])
    first = client.get(f"{url}?kind=batch").get_json()
    assert first["kind"] == "batch" and [r["step"] for r in first["rows"]] == [0, 1, 2, 3]
    assert first["rows"][1]["logs"] == {"loss": 0.5}
    metrics.write(job["id"], rows[4:])
    second = client.get(f"{url}?kind=batch&after={first['next']}").get_json()
    assert [r["step"] for r in second["rows"]] == [4, 5]
    idle = client.get(f"{url}?kind=batch&after={second['next']}").get_json()
    assert idle["rows"] == [] and idle["next"] == second["next"]
    assert client.get(f"{url}?kind=epoch").get_json()["rows"] == []
    sampled = client.get(f"{url}?kind=batch&max_points=3").get_json()["rows"]
    assert len(sampled) <= 3 and sampled[-1]["step"] == 5


@pytest.mark.parametrize("query", ["kind=step", "after=abc", "after=-5", "max_points=0"])
def test_metrics_bad_parameters(client, job_spec, query):
    job = submit(client, job_spec)
    assert_envelope(client.get(f"/api/v1/jobs/{job['id']}/metrics?{query}"), 400, "bad_request")


def _finish_with_model(settings, job_id: str, payload: bytes) -> None:
    store = open_store(settings.storage_url)
    store.put_bytes(final_model_key("test", job_id), payload)
    jobs = JobStore(settings.database_url)
    claim = jobs.claim(job_id, "worker-1", 30)
    jobs.finish(
        job_id, claim.attempt_id, "succeeded", model_uri=store.uri(final_model_key("test", job_id))
    )


def test_model_download_local_store(client, settings, job_spec):
    job = submit(client, {**job_spec, "name": "my model/v1"})
    url = f"/api/v1/jobs/{job['id']}/model"
    assert_envelope(client.get(url), 404, "model_not_ready")
    payload = bytes(range(256)) * 40
    _finish_with_model(settings, job["id"], payload)
    response = client.get(url)
    assert response.status_code == 200 and response.data == payload
    assert response.mimetype == "application/octet-stream"
    assert "filename=my_model_v1.keras" in response.headers["Content-Disposition"]


def test_model_download_s3_store(tmp_path, sqlite_url, s3, job_spec):
    settings = make_settings(tmp_path, sqlite_url, storage_url=s3.url(f"api-{uuid.uuid4().hex}"))
    client = api_client(settings)
    job = submit(client, job_spec)
    url = f"/api/v1/jobs/{job['id']}/model"
    assert_envelope(client.get(url), 404, "model_not_ready")
    payload = b"PK\x03\x04" + bytes(range(256)) * 4000
    _finish_with_model(settings, job["id"], payload)
    response = client.get(url)  # a short-lived presigned link, straight to the store
    assert response.status_code == 302
    link = response.headers["Location"]
    assert link.startswith(s3.endpoint) and "Expires=" in link or "X-Amz-Expires=" in link
    with urllib.request.urlopen(link, timeout=30) as direct:
        assert direct.read() == payload
        assert 'filename="tiny.keras"' in direct.headers["Content-Disposition"]


def test_model_missing_from_store_is_404(client, settings, job_spec):
    job = submit(client, job_spec)
    _finish_with_model(settings, job["id"], b"x")
    open_store(settings.storage_url).delete_prefix(final_model_key("test", job["id"]))
    error = assert_envelope(client.get(f"/api/v1/jobs/{job['id']}/model"), 404, "model_missing")
    assert settings.home not in error["message"]


# -- health and errors ----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/healthz", "/api/v1/healthz"])
def test_healthz(client, path):
    response = client.get(path)
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


@pytest.mark.parametrize("path", ["/readyz", "/api/v1/readyz"])
def test_readyz_ok(client, path):
    body = client.get(path).get_json()
    assert body == {"status": "ok", "checks": {"database": "ok", "broker": "ok", "store": "ok"}}


def test_readyz_ok_on_redis(tmp_path, sqlite_url, redis_url):
    client = create_app(make_settings(tmp_path, sqlite_url, broker_url=redis_url)).test_client()
    assert client.get("/readyz").status_code == 200


def test_readyz_broker_down(tmp_path, sqlite_url):
    broker = f"redis://:secret-pw@127.0.0.1:{free_port()}/0"
    client = create_app(make_settings(tmp_path, sqlite_url, broker_url=broker)).test_client()
    response = client.get("/readyz")
    error = assert_envelope(response, 503, "not_ready")
    assert error["details"]["checks"]["database"] == "ok"
    assert error["details"]["checks"]["broker"] != "ok" and "broker" in error["message"]
    assert "secret-pw" not in response.get_data(as_text=True)


def test_readyz_schema_behind(tmp_path):
    client = create_app(make_settings(tmp_path, f"sqlite:///{tmp_path / 'empty.db'}")).test_client()
    error = assert_envelope(client.get("/readyz"), 503, "not_ready")
    assert "fitfleet db upgrade" in error["details"]["checks"]["database"]
    assert error["details"]["checks"]["broker"] == "ok"


def test_unknown_route_and_method(client):
    error = assert_envelope(client.get("/api/v1/nothing"), 404, "not_found")
    assert "/api/v1/nothing" in error["message"]
    response = client.delete("/api/v1/jobs")
    assert_envelope(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]


def test_unexpected_error_is_a_safe_500(settings, caplog):
    app = create_app(settings)

    def explode():
        raise RuntimeError("password=hunter2 at /srv/secret/path")

    app.add_url_rule("/api/v1/explode", view_func=explode)
    response = app.test_client().get(
        "/api/v1/explode", headers={"Authorization": f"Bearer {admin_token(settings)}"}
    )
    error = assert_envelope(response, 500, "internal_error")
    assert "hunter2" not in response.get_data(as_text=True) and "/srv" not in error["message"]
    assert "hunter2" in caplog.text  # the traceback goes to the log


def test_a_cursor_beyond_any_step_is_a_400_not_a_database_error(db_url, tmp_path):
    client = api_client(make_settings(tmp_path, db_url))
    job_id = "0" * 32
    got = client.get(f"/api/v1/jobs/{job_id}/metrics?after={2**64}")
    assert got.status_code == 400
    assert got.get_json()["error"]["details"] == {"parameter": "after"}


def test_a_job_list_cursor_that_names_no_job_is_a_400_on_every_database(db_url, tmp_path):
    """Found by schemathesis: a NUL byte in the cursor was a 500 on PostgreSQL."""
    client = api_client(make_settings(tmp_path, db_url))
    for cursor in ("%00T", "not-a-job", "0" * 32):
        got = client.get(f"/api/v1/jobs?cursor={cursor}")
        assert got.status_code == 400, cursor
        assert got.get_json()["error"]["details"] == {"parameter": "cursor"}
    assert client.get("/api/v1/jobs/%00abc").status_code == 404
