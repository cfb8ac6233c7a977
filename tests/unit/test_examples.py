"""Every example in examples/ is a valid job whose data loads and fits its model's inputs."""

from __future__ import annotations

import math

import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("pyarrow")

from fitfleet.demo import EXAMPLES, load_example
from service.admission.spec import normalize
from service.core.config import Settings

NAMES = sorted(p.stem for p in EXAMPLES.glob("*.json"))


def test_the_classic_cases_are_there():
    assert {"mlp_csv", "digits_cnn", "lstm_sequence", "two_inputs"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_example_loads_and_evaluates(name, tmp_path):
    from workers.training import runner
    from workers.training.data.shards import ShardSet

    spec = normalize(load_example(name), Settings.from_env({}))
    train, val = runner.load_data(spec, tmp_path)
    assert len(train) > 100 and val is not None and len(val) > 10
    if spec["data"]["train"].endswith("/"):
        assert isinstance(train, ShardSet) and len(train.shards) > 1
    model = runner.build(spec, train)
    sample = train.take(slice(0, 4))
    names = spec["data"]["x"]
    assert len(model.inputs) == (1 if isinstance(names, str) else len(names))
    logs = model.evaluate(sample.x, sample.y, verbose=0, return_dict=True)
    assert math.isfinite(logs["loss"])
