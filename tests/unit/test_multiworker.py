"""Multi-worker jobs without a cluster: the spec's refusals, TF_CONFIG, each member's share
of a global batch, and the metric restore that splits sums over the members."""

from __future__ import annotations

import json

import numpy as np
import pytest

from service.admission.spec import normalize
from service.core.config import Settings
from service.core.errors import InvalidSpec
from tests.specs import mlp_spec

TWO = {"strategy": "multi_worker_mirrored", "workers": 2}


def spec(**extra) -> dict:
    return {**mlp_spec("file:///tmp/x.npz", features=4, hidden=4, batch_size=16), **extra}


def refusal(raw: dict, **settings) -> str:
    with pytest.raises(InvalidSpec) as exc:
        normalize(raw, Settings.from_env({}, **settings))
    return str(exc.value)


def test_multi_worker_spec_is_kept_and_mirrored_keeps_its_meaning():
    settings = Settings.from_env({})
    assert normalize(spec(distribute=TWO), settings)["distribute"] == TWO
    assert normalize(spec(distribute="mirrored"), settings)["distribute"] == "mirrored"


def test_multi_worker_refusals_name_the_field_and_the_setting():
    too_many = refusal(spec(distribute={**TWO, "workers": 5}), max_job_workers=4)
    assert "distribute.workers" in too_many and "FITFLEET_MAX_JOB_WORKERS" in too_many
    assert "multi_worker_mirrored" in refusal(spec(distribute={"strategy": "ring", "workers": 2}))
    assert "distribute.workers" in refusal(spec(distribute={**TWO, "workers": 0}))
    assert "not hosts" in refusal(spec(distribute={**TWO, "hosts": ["a"]}))
    uneven = spec(distribute={**TWO, "workers": 3})
    assert "multiple of distribute.workers" in refusal(uneven)
    timed = spec(distribute=TWO, checkpoint={"every_seconds": 5})
    assert "every_n_batches" in refusal(timed)


def test_tf_config_names_every_member_and_this_one():
    from workers.training.multiworker import tf_config

    config = json.loads(tf_config(["a:1", "b:2"], 1))
    assert config == {"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}


class _Local:
    """A strategy stand-in that hands the per-worker dataset back as it is."""

    def distribute_datasets_from_function(self, fn):
        return fn(None)


def test_members_share_every_global_batch_in_order():
    from workers.training.data import memory
    from workers.training.multiworker import Share

    x = np.arange(40, dtype="float32").reshape(20, 2)
    y = np.arange(20, dtype="int64")
    arrays = memory.Arrays(x=x, y=y)
    plan = memory.BatchPlan(20, 8, seed=3, shuffle=True)
    whole = [b for b in memory.make_dataset(arrays, plan, 0, 6).as_numpy_iterator()]
    shares = [
        list(Share(_Local(), rank, 2).dataset(arrays, plan, 0, 6).as_numpy_iterator())
        for rank in (0, 1)
    ]
    for g, batch in enumerate(whole):
        got = np.concatenate([shares[0][g][1], shares[1][g][1]])
        np.testing.assert_array_equal(got, batch[1])  # the global batch, split in two
        assert len(shares[0][g][1]) == len(batch[1]) // 2


def test_metric_restore_splits_sums_over_the_members():
    from workers.training.resume import state

    class Var:
        aggregation = "sum"

        def assign(self, value):
            self.value = value

    class Strategy:
        num_replicas_in_sync = 2

        class extended:
            worker_devices = ("/job:worker/task:0/device:CPU:0",)

    class Model:
        def __init__(self):
            self.distribute_strategy = Strategy()
            self.metrics = [type("M", (), {"variables": [Var(), Var()]})()]

    model = Model()
    state.restore_metrics(model, {"metric/0000": np.float32(6.0), "metric/0001": np.float32(4.0)})
    assert [v.value for v in model.metrics[0].variables] == [3.0, 2.0]
