"""The workers' side of admission: targets fed by output name, CSV read by pyarrow, and
data smaller than one batch trained as Keras trains it."""

from __future__ import annotations

import json

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from service.core.errors import InvalidSpec
from tests.unit.test_resume import final_weights, run_job
from workers.training.data import formats, memory


def two_outputs_json() -> dict:
    x = keras.Input((4,), name="x")
    h = keras.layers.Dense(8, activation="relu")(x)
    cls = keras.layers.Dense(3, activation="softmax", name="cls")(h)
    reg = keras.layers.Dense(1, name="reg")(h)
    return json.loads(keras.Model(x, [cls, reg], name="two_outputs").to_json())


@pytest.fixture
def env(tmp_path):
    from tests.conftest import embedded_settings

    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 4)).astype("float32")
    np.savez(tmp_path / "two.npz", x=x, labels=np.argmax(x[:, :3], axis=1), target=x[:, :1] * 2.0)
    return embedded_settings(tmp_path), tmp_path


def two_output_spec(folder, y) -> dict:
    return {
        "model": two_outputs_json(),
        "compile": {
            "optimizer": {"class_name": "SGD", "config": {"learning_rate": 0.05}},
            "loss": {"cls": "sparse_categorical_crossentropy", "reg": "mse"},
        },
        "data": {"train": (folder / "two.npz").as_uri(), "y": y},
        "fit": {"epochs": 2, "batch_size": 8},
        "seed": 5,
    }


def test_targets_named_by_output_come_as_a_dict(env):
    _, folder = env
    got = formats.read(folder / "two.npz", "npz", "x", {"reg": "target", "cls": "labels"}, "u")
    with np.load(folder / "two.npz") as npz:
        assert set(got.y) == {"reg", "cls"}
        np.testing.assert_array_equal(got.y["reg"], npz["target"])
        np.testing.assert_array_equal(got.y["cls"], npz["labels"])
    part = got.take(slice(0, 3))
    assert part.y["cls"].shape == (3,) and part.y["reg"].shape == (3, 1)
    assert formats.count_rows(folder / "two.npz", "npz", {"reg": "target"}, "u") == 40


def test_a_two_output_job_feeds_its_targets_by_name(env):
    """A dict in any order trains exactly as the list in output order, and so does a
    resumed attempt; had the dict been read by position, ``cls`` would get the floats."""
    settings, folder = env
    by_list, _ = run_job(settings, two_output_spec(folder, ["labels", "target"]))
    by_name, _ = run_job(settings, two_output_spec(folder, {"reg": "target", "cls": "labels"}))
    resumed, outcomes = run_job(
        settings, two_output_spec(folder, {"reg": "target", "cls": "labels"}), preempt_at=3
    )
    assert [j["state"] for j in (by_list, by_name, resumed)] == ["succeeded"] * 3
    assert outcomes[0] == "preempted"
    ref = final_weights(settings, by_list["id"])
    for job in (by_name, resumed):
        for a, b in zip(ref, final_weights(settings, job["id"]), strict=True):
            np.testing.assert_array_equal(a, b)


def write_csv(tmp_path, text: str):
    path = tmp_path / "d.csv"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a,b,label\n", "has a header but no rows"),
        ("", "is an empty CSV file"),
        ("a,b,label\n1,2,0\n3,x7,1\n", "column 'b', row 2 has a non-numeric value 'x7'"),
        ("a,b,label\n1,2,0\n3,,1\n", "column 'b', row 2 is empty"),
        ("a,b,label\n1,2,0\n3,4\n", "not a well-formed CSV file"),
    ],
)
def test_the_csv_reader_names_what_is_wrong(tmp_path, text, expected):
    path = write_csv(tmp_path, text)
    with pytest.raises(InvalidSpec) as info:
        memory.load_csv(path, "x", "label", "file:///d.csv")
    assert expected in info.value.message and info.value.message.startswith("file:///d.csv: ")


def test_the_csv_reader_gives_features_and_one_or_more_labels(tmp_path):
    path = write_csv(tmp_path, "a,b,label,score\n1,2,0,0.5\n3,4,2,1.5\n")
    got = memory.load_csv(path, "x", "label", "u")
    np.testing.assert_array_equal(got.x, np.array([[1, 2, 0.5], [3, 4, 1.5]], "float32"))
    assert got.y.dtype == np.int64 and list(got.y) == [0, 2]
    both = memory.load_csv(path, ["a", "b"], ["label", "score"], "u")
    assert both.x.shape == (2, 2) and list(both.y[0]) == [0, 2] and list(both.y[1]) == [0.5, 1.5]


def test_less_than_one_batch_is_one_partial_batch_as_in_keras():
    """Keras trains 5 samples with batch_size=32 as one batch of 5 per epoch."""
    from keras.src.trainers.data_adapters.array_data_adapter import ArrayDataAdapter

    x, y = np.arange(20, dtype="float32").reshape(5, 4), np.arange(5) % 3
    adapter = ArrayDataAdapter(x, y, batch_size=32)
    plan = memory.BatchPlan(5, 32, seed=1, shuffle=True)
    assert plan.steps_per_epoch == adapter.num_batches == 1
    batches = list(memory.make_dataset(memory.Arrays(x, y), plan, 0, 2).as_numpy_iterator())
    assert [len(b[0]) for b in batches] == [adapter.partial_batch_size] * 2 == [5, 5]
    assert sorted(batches[0][1].tolist()) == sorted(y.tolist())
