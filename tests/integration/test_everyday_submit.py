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

from service.store.jobs import JobStore
from tests.unit.apihelpers import api_client, make_settings

SCHEDULES = {
    "ExponentialDecay": lambda s: s.ExponentialDecay(0.01, 2, 0.5),
    "CosineDecay": lambda s: s.CosineDecay(0.01, 20),
    "CosineDecayRestarts": lambda s: s.CosineDecayRestarts(0.01, 10),
    "InverseTimeDecay": lambda s: s.InverseTimeDecay(0.01, 5, 0.5),
    "PiecewiseConstantDecay": lambda s: s.PiecewiseConstantDecay([10, 20], [0.1, 0.01, 0.001]),
    "PolynomialDecay": lambda s: s.PolynomialDecay(0.01, 50),
}
OPTIMIZERS = (
    "SGD",
    "RMSprop",
    "Adam",
    "AdamW",
    "Adadelta",
    "Adagrad",
    "Adamax",
    "Adafactor",
    "Nadam",
    "Ftrl",
    "Lion",
    "Lamb",
)


@pytest.fixture
def api(tmp_path, db_url, s3):
    """``(client, settings)``: the API on each database, data read from ``tmp_path`` or S3."""
    settings = make_settings(
        tmp_path, db_url, data_file_roots=str(tmp_path), data_s3_locations=s3.bucket
    )
    return api_client(settings), settings


def tiny_json() -> dict:
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, activation="softmax")], name="tiny"
    )
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
    spec = {
        "model": model or tiny_json(),
        "compile": {"optimizer": "adam", "loss": "sparse_categorical_crossentropy"},
        "data": {"train": train},
        "fit": {"epochs": 1, "batch_size": 4},
    }
    for key, value in sections.items():
        spec[key] = {**spec.get(key, {}), **value}
    return spec


def default_data(tmp_path) -> str:
    rng = np.random.default_rng(0)
    return npz_file(tmp_path, x=rng.normal(size=(12, 4)).astype("float32"), y=np.arange(12) % 3)


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
        return {
            k: strip_module(v) for k, v in value.items() if k not in ("module", "registered_name")
        }
    if isinstance(value, list):
        return [strip_module(v) for v in value]
    return value


def optimizer_forms() -> dict:
    s = keras.optimizers.schedules
    forms = {
        "name": "adam",
        "name sgd": "sgd",
        "dict config": {"class_name": "Adam", "config": {"learning_rate": 0.01}},
    }
    for name in OPTIMIZERS:
        forms[f"serialized {name}"] = keras.optimizers.serialize(getattr(keras.optimizers, name)())
    for name, make in SCHEDULES.items():
        serialized = keras.optimizers.serialize(keras.optimizers.Adam(make(s)))
        forms[f"Adam({name})"] = serialized
        forms[f"Adam({name}) without module"] = strip_module(serialized)
    forms["SGD(schedule as a dict config)"] = {
        "class_name": "SGD",
        "config": {
            "learning_rate": {
                "class_name": "ExponentialDecay",
                "config": {"initial_learning_rate": 0.1, "decay_steps": 3, "decay_rate": 0.9},
            }
        },
    }
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
    model.compile(
        keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(0.01, 20)),
        loss="sparse_categorical_crossentropy",
    )
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
    error = refused(
        client,
        settings,
        job_spec(default_data(tmp_path), data={"validation": val}),
        code="data_not_found",
    )
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
    refused(
        client, settings, job_spec((tmp_path / "nowhere").as_uri() + "/"), code="data_not_found"
    )


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
    error = refused(
        client, settings, job_spec(f"s3://{s3.bucket}/{base}", model=json.loads(wide.to_json()))
    )
    assert "expects input (None, 9)" in error["message"] and "part-0.npz" in error["message"]


# -- label dtypes -----------------------------------------------------------------------------


def string_labels() -> np.ndarray:
    return np.array(["cat", "dog", "eel"])[np.arange(12) % 3]


@pytest.mark.parametrize("where", ["file", "s3"])
def test_string_labels_are_refused_saying_to_encode_them(api, tmp_path, s3, where):
    """Keras: ``fit(x, np.array(["cat", "dog", ...]))`` with sparse_categorical_crossentropy
    fails at once (``Invalid dtype: str96``); so does every loss, strings are not numbers.
    fitfleet refuses at submit with a 422 naming the labels, their dtype and what to do."""
    client, settings = api
    x = np.zeros((12, 4), "float32")
    if where == "file":
        url = npz_file(tmp_path, x=x, y=string_labels())
    else:
        buf = io.BytesIO()
        np.savez(buf, x=x, y=string_labels())
        url = s3_object(s3, buf.getvalue(), ".npz")
    error = refused(client, settings, job_spec(url))
    assert "labels y (data.y) are strings (dtype U3)" in error["message"]
    assert "encode the classes as integers" in error["message"]
    assert error["details"] == {
        "field": "data.y",
        "data": "data.train",
        "array": "y",
        "dtype": "U3",
    }
    refused(client, settings, job_spec(url, compile={"loss": "mse"}))  # any loss


def test_object_labels_are_refused(api, tmp_path):
    """Keras: an object array of labels fails in graph execution (UnimplementedError);
    fitfleet's workers read .npz without pickle, so it is refused at submit, by name."""
    client, settings = api
    url = npz_file(tmp_path, x=np.zeros((12, 4), "float32"), y=string_labels().astype(object))
    error = refused(client, settings, job_spec(url))
    assert "labels y (data.y) hold Python objects (dtype object)" in error["message"]
    assert error["details"]["dtype"] == "object"


def test_integer_labels_stored_as_floats_are_accepted(api, tmp_path):
    """Keras: sparse labels 0.0, 1.0, 2.0 as floats train as classes; fitfleet accepts them."""
    client, _ = api
    url = npz_file(tmp_path, x=np.zeros((12, 4), "float32"), y=(np.arange(12) % 3) * 1.0)
    submitted(client, job_spec(url))


# -- multi-output models ----------------------------------------------------------------------


def two_output_data(tmp_path) -> str:
    rng = np.random.default_rng(1)
    return npz_file(
        tmp_path,
        x=rng.normal(size=(12, 4)).astype("float32"),
        labels=np.arange(12) % 3,
        target=rng.normal(size=(12, 1)).astype("float32"),
        wide=np.arange(12) % 10,
    )


def two_output_spec(train: str, y) -> dict:
    return job_spec(
        train,
        model=two_outputs_json(),
        data={"y": y},
        compile={"loss": {"cls": "sparse_categorical_crossentropy", "reg": "mse"}},
    )


def test_targets_by_output_name_are_accepted_and_stored(api, tmp_path):
    """Keras: ``fit(x, {"reg": target, "cls": labels})`` matches targets by output name, in
    any order. fitfleet takes ``data.y`` as {output: array} and stores it as posted."""
    client, settings = api
    y = {"reg": "target", "cls": "labels"}
    job = submitted(client, two_output_spec(two_output_data(tmp_path), y))
    assert JobStore(settings.database_url).get(job["id"])["spec"]["data"]["y"] == y
    summary = JobStore(settings.database_url).summary(job["id"])
    assert summary["output_names"] == ["cls", "reg"]


def test_a_list_in_output_order_is_accepted(api, tmp_path):
    """Keras: a list of targets is matched by position; in output order it trains."""
    client, _ = api
    submitted(client, two_output_spec(two_output_data(tmp_path), ["labels", "target"]))


def test_an_unknown_output_name_is_refused(api, tmp_path):
    """Keras: a target dict key that names no output is an error. fitfleet refuses at submit,
    naming the key, the array and the outputs there are."""
    client, settings = api
    error = refused(
        client,
        settings,
        two_output_spec(two_output_data(tmp_path), {"cls": "labels", "regr": "target"}),
    )
    assert "no output 'regr' for array 'target' (outputs: cls, reg)" in error["message"]
    assert error["details"]["field"] == "data.y.regr"
    error = refused(client, settings, two_output_spec(two_output_data(tmp_path), {"cls": "labels"}))
    assert "no array for output 'reg'" in error["message"]


def test_a_list_that_does_not_fit_the_outputs_is_refused(api, tmp_path):
    """Keras: a list of targets whose length differs from the outputs fails; one whose
    shapes are swapped trains the wrong heads (or fails on the labels). fitfleet refuses
    both at submit, naming the output and the array."""
    client, settings = api
    train = two_output_data(tmp_path)
    error = refused(client, settings, two_output_spec(train, ["labels"]))
    assert "model has 2 outputs but data.y names 1 array" in error["message"]
    assert "outputs: cls, reg" in error["message"]
    error = refused(client, settings, two_output_spec(train, ["target", "labels"]))
    assert "model output 'cls' (None, 3)" in error["message"] and "target" in error["message"]
    error = refused(client, settings, two_output_spec(train, "labels"))
    assert "model has 2 outputs but data.y names 1 array" in error["message"]


def test_arrays_named_like_the_outputs_in_another_order_are_refused(api, tmp_path):
    """The case from the week: arrays named ``cls`` and ``reg`` listed as ``["reg", "cls"]``
    train swapped in Keras (a list is positional). fitfleet refuses and points to the dict."""
    client, settings = api
    rng = np.random.default_rng(2)
    url = npz_file(
        tmp_path,
        x=rng.normal(size=(12, 4)).astype("float32"),
        cls=np.arange(12) % 3,
        reg=rng.normal(size=(12, 1)),
    )
    error = refused(client, settings, two_output_spec(url, ["reg", "cls"]))
    assert "in another order" in error["message"] and "{output: array}" in error["message"]
    submitted(client, two_output_spec(url, {"reg": "reg", "cls": "cls"}))


def test_labels_of_each_output_are_checked(api, tmp_path):
    """Keras: sparse labels 0..9 for a 3-unit output fail at the first batch (or give NaN on
    GPU). fitfleet checks each output's labels at submit and names the output."""
    client, settings = api
    error = refused(
        client,
        settings,
        two_output_spec(two_output_data(tmp_path), {"cls": "wide", "reg": "target"}),
    )
    assert (
        "model output 'cls' (None, 3) has 3 units but labels wide range from 0 to 9"
        in error["message"]
    )


# -- CSV, Parquet and TFRecord ----------------------------------------------------------------


def csv_data(tmp_path, text: str) -> str:
    path = tmp_path / f"{uuid.uuid4().hex[:8]}.csv"
    path.write_text(text)
    return path.as_uri()


def csv_rows(n: int = 12) -> str:
    return "".join(f"{i * 0.5},1,2,3,{i % 3}\n" for i in range(n))


def test_a_header_only_csv_is_refused_naming_the_file(api, tmp_path):
    """Keras: ``fit`` on zero samples raises ("Expected input data to be non-empty" or a
    division by zero in the adapter). fitfleet refuses at submit, naming the file."""
    client, settings = api
    url = csv_data(tmp_path, "a,b,c,d,label\n")
    error = refused(client, settings, job_spec(url, data={"y": "label"}))
    assert error["details"]["field"] == "data.train"
    assert "header but no rows" in error["message"] and "data.train" in error["message"]


def test_a_non_numeric_csv_cell_is_refused_naming_column_row_and_value(api, tmp_path, s3):
    """Keras: ``np.loadtxt`` or a float cast of the table fails on ``abc``; fitfleet refuses
    at submit with the column, the row (1 = first after the header) and the value, for a
    file and for an S3 object."""
    client, settings = api
    text = "a,b,c,d,label\n" + csv_rows(3) + "0,abc,2,3,1\n" + csv_rows(2)
    for url in (csv_data(tmp_path, text), s3_object(s3, text.encode(), ".csv")):
        error = refused(client, settings, job_spec(url, data={"y": "label"}))
        assert "column 'b', row 4 has a non-numeric value 'abc'" in error["message"]
    error = refused(
        client,
        settings,
        job_spec(
            csv_data(tmp_path, "a,b,c,d,label\n" + csv_rows(2) + "1,2,,3,0\n"), data={"y": "label"}
        ),
    )
    assert "column 'c', row 3 is empty" in error["message"]
    error = refused(
        client,
        settings,
        job_spec(
            csv_data(tmp_path, "a,b,c,d,label\n" + csv_rows(2) + "1,2,3,4,cat\n"),
            data={"y": "label"},
        ),
    )
    assert "column 'label', row 3 has a non-numeric value 'cat'" in error["message"]


def test_a_well_formed_csv_is_accepted(api, tmp_path):
    """Keras: four float feature columns and integer labels train; fitfleet accepts them."""
    client, _ = api
    submitted(
        client, job_spec(csv_data(tmp_path, "a,b,c,d,label\n" + csv_rows()), data={"y": "label"})
    )


def parquet_data(tmp_path, width: int, label=None) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    x = np.zeros((12, width), "float32")
    path = tmp_path / f"{uuid.uuid4().hex[:8]}.parquet"
    label = np.arange(12) % 3 if label is None else label
    pq.write_table(pa.table({"x": pa.array(list(x)), "y": pa.array(label)}), path)
    return path.as_uri()


def wide_input_model(width: int) -> dict:
    model = keras.Sequential([keras.Input((width,)), keras.layers.Dense(3, activation="softmax")])
    return json.loads(model.to_json())


def test_a_parquet_list_column_wider_than_the_input_is_refused(api, tmp_path, s3):
    """Keras: ``Input((6,))`` fed 9-wide rows fails in the first batch ("expected axis -1 of
    input shape to have value 6"). fitfleet reads the Parquet schema and first row at submit,
    from a file or from S3 through ranged reads."""
    client, settings = api
    local = parquet_data(tmp_path, 9)
    with open(local.removeprefix("file://"), "rb") as f:
        remote = s3_object(s3, f.read(), ".parquet")
    for url in (local, remote):
        error = refused(client, settings, job_spec(url, model=wide_input_model(6)))
        assert "model expects input (None, 6) but data x has shape (12, 9)" in error["message"]
    submitted(client, job_spec(parquet_data(tmp_path, 6), model=wide_input_model(6)))


def test_parquet_labels_are_checked_like_npz(api, tmp_path):
    """As for .npz: string labels and out-of-range classes are refused at submit."""
    client, settings = api
    error = refused(
        client,
        settings,
        job_spec(parquet_data(tmp_path, 4, label=[str(v) for v in string_labels()])),
    )
    assert "labels y (data.y) are strings" in error["message"]
    error = refused(client, settings, job_spec(parquet_data(tmp_path, 4, label=np.arange(12))))
    assert "labels y range from 0 to 11 (12 classes)" in error["message"]


def test_a_parquet_string_feature_column_is_refused(api, tmp_path):
    """Keras: a string column among the features cannot become a float tensor; fitfleet
    refuses at submit when ``x`` stands for every column but the label."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    client, settings = api
    path = tmp_path / "mixed.parquet"
    pq.write_table(
        pa.table(
            {
                "a": np.zeros(12),
                "b": ["x"] * 12,
                "c": np.zeros(12),
                "d": np.zeros(12),
                "y": np.arange(12) % 3,
            }
        ),
        path,
    )
    error = refused(client, settings, job_spec(path.as_uri()))
    assert "input x (data.x) are strings" in error["message"]
    error = refused(client, settings, job_spec(path.as_uri(), data={"y": "label"}))
    assert "has no label column 'label' (columns: a, b, c, d, y)" in error["message"]


def tfrecord_data(tmp_path, width: int) -> str:
    import tensorflow as tf

    path = tmp_path / f"{uuid.uuid4().hex[:8]}.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as w:
        for i in range(12):
            feature = {
                "x": tf.train.Feature(float_list=tf.train.FloatList(value=[0.5] * width)),
                "y": tf.train.Feature(int64_list=tf.train.Int64List(value=[i % 3])),
            }
            w.write(
                tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
            )
    return path.as_uri()


def test_a_tfrecord_feature_wider_than_the_input_is_refused(api, tmp_path):
    """Keras: the same 9-wide rows for ``Input((6,))`` fail in the first batch; fitfleet
    reads the first Example at submit and refuses, naming the feature's shape."""
    client, settings = api
    error = refused(
        client, settings, job_spec(tfrecord_data(tmp_path, 9), model=wide_input_model(6))
    )
    assert "model expects input (None, 6) but data x has shape (None, 9)" in error["message"]
    error = refused(
        client,
        settings,
        job_spec(tfrecord_data(tmp_path, 6), model=wide_input_model(6), data={"y": "label"}),
    )
    assert "the TFRecord file has no feature 'label' (features: x, y)" in error["message"]
    submitted(client, job_spec(tfrecord_data(tmp_path, 6), model=wide_input_model(6)))


def test_data_smaller_than_one_batch_is_accepted(api, tmp_path):
    """Keras: 5 samples with ``batch_size=32`` train one partial batch of 5 per epoch
    (``steps_per_epoch == 1``). fitfleet accepts the job, and its workers do the same
    (tests/unit/test_data_by_name.py checks the batches)."""
    client, _ = api
    url = npz_file(tmp_path, x=np.zeros((5, 4), "float32"), y=np.arange(5) % 3)
    job = submitted(client, job_spec(url, fit={"batch_size": 32}))
    assert job["spec"]["fit"]["batch_size"] == 32


def test_too_few_samples_to_split_or_none_at_all_are_refused(api, tmp_path):
    """Keras: ``fit(validation_split=0.2)`` on 1 sample raises "Training data contains 1
    samples, which is not sufficient to split it" (2 samples split 1 and 1); ``fit`` on 0
    samples fails too. fitfleet refuses both at submit, naming the count."""
    client, settings = api
    one = npz_file(tmp_path, x=np.zeros((1, 4), "float32"), y=np.arange(1))
    error = refused(client, settings, job_spec(one, fit={"validation_split": 0.2}))
    assert "holds 1 samples, which is not sufficient to split" in error["message"]
    assert "validation_split=0.2" in error["message"]
    two = npz_file(tmp_path, x=np.zeros((2, 4), "float32"), y=np.arange(2))
    submitted(client, job_spec(two, fit={"validation_split": 0.2}))  # one and one, as Keras
    empty = npz_file(tmp_path, x=np.zeros((0, 4), "float32"), y=np.zeros(0, "int64"))
    assert "holds no samples" in refused(client, settings, job_spec(empty))["message"]
