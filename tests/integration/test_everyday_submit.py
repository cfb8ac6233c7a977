"""Week-one everyday submissions: what plain Keras does with them, and what fitfleet says.

Each case's docstring states what ``model.fit`` does with the same model and data; the
test checks that fitfleet does the same, or refuses at submit with a 4xx that names the
field, the output or column, and the value. Every case runs on SQLite and PostgreSQL,
through the real API, with data in a local folder or in moto's S3 server.
"""

from __future__ import annotations

import copy
import io
import json
import uuid

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from service.jobs import JobStore
from tests.unit.apihelpers import api_client, make_settings

SCHEDULES = {
    "ExponentialDecay": lambda s: s.ExponentialDecay(0.01, 2, 0.5),
    "CosineDecay": lambda s: s.CosineDecay(0.01, 20),
    "CosineDecayRestarts": lambda s: s.CosineDecayRestarts(0.01, 10),
    "InverseTimeDecay": lambda s: s.InverseTimeDecay(0.01, 5, 0.5),
    "PiecewiseConstantDecay": lambda s: s.PiecewiseConstantDecay([10, 20], [0.1, 0.01, 0.001]),
    "PolynomialDecay": lambda s: s.PolynomialDecay(0.01, 50),
}
OPTIMIZERS = ("SGD", "RMSprop", "Adam", "AdamW", "Adadelta", "Adagrad", "Adamax", "Adafactor",
              "Nadam", "Ftrl", "Lion", "Lamb")


@pytest.fixture
def api(tmp_path, db_url, s3):
    """``(client, settings)``: the API on each database, data read from ``tmp_path`` or S3."""
    settings = make_settings(tmp_path, db_url, data_file_roots=str(tmp_path),
                             data_s3_locations=s3.bucket)
    return api_client(settings), settings


def tiny_json() -> dict:
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")],
                             name="tiny")
    return json.loads(model.to_json())


def two_outputs_json() -> dict:
    """A functional model with outputs ``cls`` (3 classes) and ``reg`` (one number)."""
    x = keras.Input((4,), name="x")
    h = keras.layers.Dense(8, activation="relu")(x)
    cls = keras.layers.Dense(3, activation="softmax", name="cls")(h)
    reg = keras.layers.Dense(1, name="reg")(h)
    return json.loads(keras.Model(x, [cls, reg], name="two_outputs").to_json())


def npz_file(tmp_path, **arrays) -> str:
    path = tmp_path / f"{uuid.uuid4().hex[:8]}.npz"
    np.savez(path, **arrays)
    return path.as_uri()


def s3_object(s3, body: bytes, suffix: str) -> str:
    key = f"everyday/{uuid.uuid4().hex}{suffix}"
    s3.client().put_object(Bucket=s3.bucket, Key=key, Body=body)
    return f"s3://{s3.bucket}/{key}"


def job_spec(train: str, model: dict | None = None, **sections) -> dict:
    spec = {"model": model or tiny_json(),
            "compile": {"optimizer": "adam", "loss": "sparse_categorical_crossentropy"},
            "data": {"train": train}, "fit": {"epochs": 1, "batch_size": 4}}
    for key, value in sections.items():
        spec[key] = {**spec.get(key, {}), **value}
    return spec


def default_data(tmp_path) -> str:
    rng = np.random.default_rng(0)
    return npz_file(tmp_path, x=rng.normal(size=(12, 4)).astype("float32"),
                    y=np.arange(12) % 3)


def submitted(client, spec) -> dict:
    response = client.post("/api/v1/jobs", json=spec)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def refused(client, settings, spec, status: int = 422, code: str = "invalid_spec") -> dict:
    """The error of a refused submission, after checking that no job row was written."""
    before = len(JobStore(settings.database_url).list(None, 500, None)[0])
    response = client.post("/api/v1/jobs", json=spec)
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert set(error) == {"code", "message", "details"} and error["code"] == code
    assert len(JobStore(settings.database_url).list(None, 500, None)[0]) == before
    return error


def strip_module(value):
    """A serialized Keras object without ``module`` and ``registered_name``, at any depth."""
    if isinstance(value, dict):
        return {k: strip_module(v) for k, v in value.items()
                if k not in ("module", "registered_name")}
    if isinstance(value, list):
        return [strip_module(v) for v in value]
    return value


def optimizer_forms() -> dict:
    s = keras.optimizers.schedules
    forms = {"name": "adam", "name sgd": "sgd",
             "dict config": {"class_name": "Adam", "config": {"learning_rate": 0.01}}}
    for name in OPTIMIZERS:
        forms[f"serialized {name}"] = keras.optimizers.serialize(getattr(keras.optimizers, name)())
    for name, make in SCHEDULES.items():
        serialized = keras.optimizers.serialize(keras.optimizers.Adam(make(s)))
        forms[f"Adam({name})"] = serialized
        forms[f"Adam({name}) without module"] = strip_module(serialized)
    forms["SGD(schedule as a dict config)"] = {
        "class_name": "SGD", "config": {"learning_rate": {
            "class_name": "ExponentialDecay",
            "config": {"initial_learning_rate": 0.1, "decay_steps": 3, "decay_rate": 0.9}}}}
    return forms


FORMS = optimizer_forms()


@pytest.mark.parametrize("form", sorted(FORMS))
def test_optimizers_and_schedules_are_stored_as_posted(api, tmp_path, form):
    """Keras: ``compile(optimizer=...)`` takes a name, a config dict or a serialized
    optimizer, with a learning-rate schedule inside. fitfleet accepts each form and stores
    the spec's optimizer exactly as posted (admission never mutates the spec)."""
    client, settings = api
    spec = job_spec(default_data(tmp_path), compile={"optimizer": FORMS[form]})
    posted = copy.deepcopy(spec)
    job = submitted(client, spec)
    assert spec == posted  # the request's own object is untouched too
    stored = JobStore(settings.database_url).get(job["id"])["spec"]
    assert stored["compile"]["optimizer"] == posted["compile"]["optimizer"]
    assert job["spec"]["compile"]["optimizer"] == posted["compile"]["optimizer"]
    assert stored["model"] == posted["model"]


def test_an_optimizer_compiled_with_a_schedule_by_client_fit_form(api, tmp_path):
    """Keras: ``model.compile(Adam(CosineDecay(0.01, 20)))`` trains with the schedule;
    ``Client.fit`` sends ``get_compile_config()['optimizer']``, which fitfleet stores as is."""
    client, settings = api
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(0.01, 20)),
                  loss="sparse_categorical_crossentropy")
    optimizer = json.loads(json.dumps(model.get_compile_config()["optimizer"]))
    job = submitted(client, job_spec(default_data(tmp_path), compile={"optimizer": optimizer}))
    stored = JobStore(settings.database_url).get(job["id"])["spec"]["compile"]["optimizer"]
    assert stored == optimizer
    assert stored["config"]["learning_rate"]["class_name"] == "CosineDecay"


# -- data locations that do not exist ---------------------------------------------------------


def test_a_missing_file_is_data_not_found(api, tmp_path):
    """Keras: ``np.load`` of a missing file raises FileNotFoundError before ``fit``. fitfleet
    refuses the submission with 422 ``data_not_found`` naming the URL."""
    client, settings = api
    url = (tmp_path / "absent.npz").as_uri()
    error = refused(client, settings, job_spec(url), code="data_not_found")
    assert url in error["message"] and error["details"]["field"] == "data.train"
    assert error["details"]["url"] == url
    val = (tmp_path / "absent-val.npz").as_uri()
    error = refused(client, settings, job_spec(default_data(tmp_path), data={"validation": val}),
                    code="data_not_found")
    assert val in error["message"] and error["details"]["field"] == "data.validation"


def test_a_missing_s3_object_is_data_not_found(api, s3):
    """As for a file: an S3 key that does not exist is refused at submit, naming the URL."""
    client, settings = api
    url = f"s3://{s3.bucket}/everyday/{uuid.uuid4().hex}/train.npz"
    error = refused(client, settings, job_spec(url), code="data_not_found")
    assert url in error["message"] and error["details"] == {"field": "data.train", "url": url}


def test_a_prefix_without_shards_is_data_not_found(api, s3, tmp_path):
    """A prefix (a URL ending in ``/``) that holds no data shard is refused at submit, on S3
    (nothing or only a ``_SUCCESS`` marker under it) and as a local folder."""
    client, settings = api
    prefix = f"s3://{s3.bucket}/everyday/{uuid.uuid4().hex}/"
    error = refused(client, settings, job_spec(prefix), code="data_not_found")
    assert prefix in error["message"] and "no data shard" in error["message"]
    s3.client().put_object(Bucket=s3.bucket, Key=prefix.split("/", 3)[3] + "_SUCCESS", Body=b"")
    refused(client, settings, job_spec(prefix), code="data_not_found")
    folder = tmp_path / "shards"
    folder.mkdir()
    (folder / "README.txt").write_text("no shards here")
    error = refused(client, settings, job_spec(folder.as_uri() + "/"), code="data_not_found")
    assert "no data shard" in error["message"]
    refused(client, settings, job_spec((tmp_path / "nowhere").as_uri() + "/"),
            code="data_not_found")


def test_a_prefix_with_shards_is_accepted_and_its_first_shard_checked(api, s3):
    """A prefix of .npz shards is accepted; its first shard's shapes are checked as a file's."""
    client, settings = api
    base = f"everyday/{uuid.uuid4().hex}/"
    for i in range(2):
        buf = io.BytesIO()
        np.savez(buf, x=np.zeros((6, 4), "float32"), y=np.arange(6) % 3)
        s3.client().put_object(Bucket=s3.bucket, Key=f"{base}part-{i}.npz", Body=buf.getvalue())
    submitted(client, job_spec(f"s3://{s3.bucket}/{base}"))
    wide = keras.Sequential([keras.Input((9,)), keras.layers.Dense(3, activation="softmax")])
    error = refused(client, settings, job_spec(f"s3://{s3.bucket}/{base}",
                                               model=json.loads(wide.to_json())))
    assert "expects input (None, 9)" in error["message"] and "part-0.npz" in error["message"]
