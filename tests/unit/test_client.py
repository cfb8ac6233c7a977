"""The Python client against the real API served in-process on a loopback port."""

from __future__ import annotations

import io
import json
import re
import socket

import pytest

from fitfleet import Client, FitfleetAPIError, FitfleetConnectionError
from fitfleet.formatting import format_logs, format_summary
from fitfleet.progress import ProgressPrinter


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def api(served_api):
    """A Client of the in-process API with an admin token, and the API's settings."""
    url, settings, token = served_api
    return Client(url, token=token, timeout=60), settings


@pytest.fixture
def spec(model_json, tmp_path):
    """A valid job spec over a small .npz file."""
    import numpy as np

    rng = np.random.default_rng(0)
    data = tmp_path / "data.npz"
    np.savez(data, x=rng.normal(size=(64, 4)).astype("float32"), y=rng.integers(0, 3, 64))
    return {
        "name": "tiny",
        "model": model_json,
        "compile": {
            "optimizer": "adam",
            "loss": "sparse_categorical_crossentropy",
            "metrics": ["accuracy"],
        },
        "data": {"train": data.as_uri()},
        "fit": {"epochs": 3, "batch_size": 16},
    }


def _finish(settings, job_id: str, epochs: int = 3, model: bytes | None = None) -> None:
    """Play a worker: claim, write epoch rows and a checkpoint, then succeed."""
    from service.storage import final_model_key, open_store
    from service.store.jobs import JobStore
    from service.store.metrics import MetricStore

    jobs = JobStore(settings.database_url)
    claim = jobs.claim(job_id, "w1", 30)
    jobs.renew(
        job_id,
        claim.attempt_id,
        30,
        {"epoch": epochs - 1, "batch": 3, "step": 4 * epochs - 1, "steps_per_epoch": 4},
    )
    rows = [
        {
            "kind": "epoch",
            "step": 4 * e + 3,
            "epoch": e,
            "batch": None,
            "attempt": 1,
            "logs": {"loss": 1.0 / (e + 1), "accuracy": 0.5 + e / 10},
            "wall_time": float(e),
        }
        for e in range(epochs)
    ]
    MetricStore(settings.database_url).write(job_id, rows)
    jobs.commit_checkpoint(
        job_id,
        claim.attempt_id,
        {
            "step": 3,
            "epoch": 0,
            "batch": 3,
            "uri": "file:///x/ckpt",
            "files": {},
            "bytes": 10,
            "sha256": "0" * 64,
            "logs": {"loss": 1.0},
        },
    )
    uri = None
    if model is not None:
        store = open_store(settings.storage_url)
        key = final_model_key(jobs.get(job_id)["project"], job_id)
        store.put_bytes(key, model)
        uri = store.uri(key)
    jobs.finish(job_id, claim.attempt_id, "succeeded", model_uri=uri)


def test_submit_get_and_state(api, spec):
    client, _ = api
    run = client.submit(spec)
    assert len(run.id) >= 8
    assert run.job["state"] == "queued"
    again = client.job(run.id)
    assert again.job["name"] == "tiny"
    assert again.job["spec"]["data"]["train"] == spec["data"]["train"]
    assert run.state == "queued"


def test_list_follows_cursor_pages(api, spec):
    client, _ = api
    ids = [client.submit({**spec, "name": f"j{i}"}).id for i in range(3)]
    assert [j["id"] for j in client.jobs()] == ids[::-1]
    assert [j["id"] for j in client.jobs(limit=2)] == ids[:0:-1]
    assert [j["id"] for j in client.iter_jobs(page_size=1)] == ids[::-1]
    client.cancel(ids[1])
    assert [j["id"] for j in client.jobs(state="cancelled")] == [ids[1]]
    assert ids[1] not in [j["id"] for j in client.jobs(state="queued")]


def test_cancel_queued_then_conflict(api, spec):
    client, _ = api
    run = client.submit(spec)
    assert client.cancel(run.id)["state"] == "cancelled"
    with pytest.raises(FitfleetAPIError) as err:
        run.cancel()
    assert err.value.status == 409
    assert err.value.code == "conflict"


def test_metrics_cursor_returns_only_new_rows(api, spec):
    from service.store.metrics import MetricStore

    client, settings = api
    run = client.submit(spec)
    store = MetricStore(settings.database_url)

    def rows(steps):
        return [
            {
                "kind": "batch",
                "step": s,
                "epoch": 0,
                "batch": s,
                "attempt": 1,
                "logs": {"loss": 1.0 - s / 10},
                "wall_time": float(s),
            }
            for s in steps
        ]

    store.write(run.id, rows(range(5)))
    first = client.metrics(run.id, kind="batch")
    assert [r["step"] for r in first["rows"]] == [0, 1, 2, 3, 4]
    assert first["rows"][2]["logs"]["loss"] == pytest.approx(0.8)
    store.write(run.id, rows(range(5, 8)))
    second = client.metrics(run.id, kind="batch", after=first["next"])
    assert [r["step"] for r in second["rows"]] == [5, 6, 7]
    assert client.metrics(run.id, kind="batch", after=second["next"])["rows"] == []
    assert client.metrics(run.id, kind="epoch")["rows"] == []


def test_wait_prints_progress_and_builds_history(api, spec):
    client, settings = api
    run = client.submit(spec)
    _finish(settings, run.id, model=b"not really a keras file")
    out = io.StringIO()
    job = run.wait(timeout=30, poll=0.1, verbose=1, stream=out)
    assert job["state"] == "succeeded"
    text = out.getvalue()
    assert "Epoch 1/3" in text and "Epoch 3/3" in text
    assert "4/4 - 0s - 0s/step - loss: 0.5000 - accuracy: 0.6000" in text  # verbose=2 form
    history = run.history
    assert history.history["loss"] == pytest.approx([1.0, 0.5, 1 / 3])
    assert history.epoch == [0, 1, 2]
    assert [a["state"] for a in run.attempts()] == ["succeeded"]
    assert [c["step"] for c in run.checkpoints()] == [3]


def test_wait_times_out_on_a_queued_job(api, spec):
    client, _ = api
    run = client.submit(spec)
    with pytest.raises(TimeoutError):
        run.wait(timeout=0.3, poll=0.1, verbose=0)


def test_download_final_model(api, spec, tmp_path):
    client, settings = api
    run = client.submit(spec)
    with pytest.raises(FitfleetAPIError) as err:
        run.download(tmp_path / "early.keras")
    assert err.value.status == 404
    assert not (tmp_path / "early.keras").exists()
    _finish(settings, run.id, model=b"keras bytes")
    path = client.download(run.id, tmp_path / "out" / "model.keras")
    assert path.read_bytes() == b"keras bytes"


def test_load_model_returns_the_trained_weights(api, spec, tmp_path):
    import keras
    import numpy as np

    client, settings = api
    run = client.submit(spec)
    model = keras.models.model_from_json(json.dumps(spec["model"]))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.save(tmp_path / "trained.keras")
    _finish(settings, run.id, model=(tmp_path / "trained.keras").read_bytes())
    loaded = run.load_model(compile=False)
    for want, got in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(want, got)


def test_summary_lists_layers(api, spec):
    client, _ = api
    summary = client.summary(client.submit(spec).id)
    text = json.dumps(summary)
    assert "Dense" in text
    assert "15" in text  # 4 * 3 weights + 3 biases
    assert "Total params: 15" in format_summary(summary)


def test_invalid_spec_raises_with_the_api_code(api, spec):
    from service.core.errors import InvalidSpec

    client, _ = api
    with pytest.raises(FitfleetAPIError) as err:
        client.submit({**spec, "model": {"class_name": "NoSuchModel", "config": {}}})
    assert err.value.status == 422
    assert err.value.code == InvalidSpec.code
    assert err.value.message


def test_unknown_job_is_404(api):
    client, _ = api
    with pytest.raises(FitfleetAPIError) as err:
        client.job("0" * 32)
    assert (err.value.status, err.value.code) == (404, "not_found")


def test_closed_port_raises_connection_error():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(FitfleetConnectionError) as err:
        Client(url, timeout=5).jobs()
    assert isinstance(err.value, FitfleetAPIError)
    assert err.value.status is None
    assert url in err.value.message


def test_client_url_from_environment(monkeypatch):
    monkeypatch.setenv("FITFLEET_API_URL", "http://127.0.0.1:9/api/v1/")
    assert Client().url == "http://127.0.0.1:9"
    assert Client("http://h:1").url == "http://h:1"


def test_progress_printer_shows_latest_batch_and_epoch_lines():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    out = Tty()
    printer = ProgressPrinter(verbose=1, stream=out)
    printer.job({"progress": {"epochs": 2, "steps_per_epoch": 4}, "attempts": 1})
    batch = [
        ("batch", {"step": s, "epoch": 0, "batch": s, "logs": {"loss": 0.5}}) for s in range(3)
    ]
    printer.rows(batch)
    printer.rows(
        [
            (
                "epoch",
                {
                    "step": 3,
                    "epoch": 0,
                    "batch": None,
                    "logs": {"loss": 0.4, "accuracy": 0.9, "val_loss": 0.7},
                },
            ),
            ("batch", {"step": 4, "epoch": 1, "batch": 0, "logs": {"loss": 0.3}}),
        ]
    )
    printer.job({"progress": {"epochs": 2, "steps_per_epoch": 4}, "attempts": 2})
    screen = [
        re.sub(r"\x1b\[[0-9;]*m", "", line.split("\r")[-1]).rstrip()
        for line in out.getvalue().split("\n")[:-1]
    ]
    assert screen == [
        "Epoch 1/2",
        "4/4 ━━━━━━━━━━━━━━━━━━━━ 0s 0s/step - loss: 0.4000 - accuracy: 0.9000 - val_loss: 0.7000",
        "Epoch 2/2",
        "1/4 ━━━━━━━━━━━━━━━━━━━━ 0s 0s/step - loss: 0.3000",
        "-- attempt 2 started; resuming from the latest checkpoint",
    ]
    assert (
        "\x1b[1m3/4\x1b[0m " in out.getvalue()
    )  # the open line showed batch 3 before the epoch ended


def test_format_logs_uses_keras_number_format():
    assert format_logs({"accuracy": 0.88, "loss": 0.41}) == "accuracy: 0.8800 - loss: 0.4100"
    assert format_logs({"loss": 0.0001}) == "loss: 1.0000e-04"


def test_history_turns_nan_and_inf_back_into_floats(api, spec):
    import math

    from service.store.jobs import JobStore
    from service.store.metrics import MetricStore

    client, settings = api
    run = client.submit(spec)
    JobStore(settings.database_url).claim(run.id, "w1", 30)
    values = [0.5, math.inf, math.nan, -math.inf]
    MetricStore(settings.database_url).write(
        run.id,
        [
            {
                "kind": "epoch",
                "step": 4 * e + 3,
                "epoch": e,
                "batch": None,
                "attempt": 1,
                "logs": {"loss": v, "accuracy": 0.5},
                "wall_time": float(e),
            }
            for e, v in enumerate(values)
        ],
    )
    assert [r["logs"]["loss"] for r in run.metrics()["rows"]] == [
        0.5,
        "Infinity",
        "NaN",
        "-Infinity",
    ]
    loss = run.history.history["loss"]
    assert all(isinstance(v, float) for v in loss)
    assert loss[0] == 0.5 and loss[1] == math.inf and math.isnan(loss[2])
    assert loss[3] == -math.inf
    assert run.history.history["accuracy"] == [0.5] * 4
