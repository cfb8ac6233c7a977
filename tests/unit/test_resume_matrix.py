"""Exact resume for every allowed callback and for learning-rate schedules, stopped at
three moments: inside an epoch, right after a checkpoint, and during a validation pass.

Each case is preempted in process (SQLite, a local-directory store), resumed, and compared
with the same spec run without interruption: bit-identical final weights, the same batch
steps and the same epoch logs. Specs are built here and run by the training code directly.
"""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from service.store.metrics import MetricStore
from tests.specs import blobs, mlp_spec
from tests.unit.attempts import assert_same_weights, final_weights, run_job

EPOCHS = 5  # 6 steps per epoch; a checkpoint every 3 steps

# mode "max" on a falling val_loss: the best epoch is the first, and patience runs out
CALLBACKS = {
    "early-stopping": [
        {
            "class_name": "EarlyStopping",
            "config": {"monitor": "val_loss", "mode": "max", "patience": 3},
        }
    ],
    "early-stopping-best-weights": [
        {
            "class_name": "EarlyStopping",
            "config": {
                "monitor": "val_loss",
                "mode": "max",
                "patience": 3,
                "restore_best_weights": True,
            },
        }
    ],
    "reduce-lr-on-plateau": [
        {
            "class_name": "ReduceLROnPlateau",
            "config": {"monitor": "val_loss", "mode": "max", "patience": 1, "factor": 0.5},
        }
    ],
    "terminate-on-nan": [{"class_name": "TerminateOnNaN", "config": {}}],
}


def _schedule(schedule) -> dict:
    return keras.optimizers.serialize(keras.optimizers.Adam(schedule))


SCHEDULES = {
    "exponential-decay": lambda: _schedule(
        keras.optimizers.schedules.ExponentialDecay(0.01, 2, 0.5)
    ),
    "cosine-decay": lambda: _schedule(keras.optimizers.schedules.CosineDecay(0.01, 20)),
}

# (global step, during the validation pass after it?)
MOMENTS = {"mid-epoch": (4, False), "after-checkpoint": (9, False), "validation": (12, True)}

CASES = [*CALLBACKS, *SCHEDULES]


def case_spec(url: str, case: str) -> dict:
    spec = mlp_spec(url, epochs=EPOCHS, checkpoint={"every_n_batches": 3, "keep_last": 3})
    if case in CALLBACKS:
        spec["fit"]["callbacks"] = CALLBACKS[case]
    else:
        spec["fit"]["callbacks"] = []
        spec["compile"]["optimizer"] = SCHEDULES[case]()
    return spec


@pytest.fixture
def env(tmp_path):
    from tests.conftest import embedded_settings

    x, y = blobs()
    np.savez(tmp_path / "train.npz", x=x, y=y)
    return embedded_settings(tmp_path), (tmp_path / "train.npz").as_uri()


_references: dict[str, tuple] = {}


def history(settings, job_id):
    metrics = MetricStore(settings.database_url)
    return (
        [r["step"] for r in metrics.read(job_id, "batch")["rows"]],
        [(r["step"], r["logs"]) for r in metrics.read(job_id, "epoch")["rows"]],
    )


def reference(settings, url, case):
    """The uninterrupted run's final weights and history, once per case and module."""
    if case not in _references:
        job, outcomes = run_job(settings, case_spec(url, case))
        assert outcomes == ["succeeded"]
        _references[case] = (
            final_weights(settings, job["id"]),
            *history(settings, job["id"]),
            job["stopped"],
        )
    return _references[case]


@pytest.mark.parametrize("moment", list(MOMENTS))
@pytest.mark.parametrize("case", CASES)
def test_resume_is_bit_identical(env, case, moment):
    settings, url = env
    weights, batches, epochs, stopped = reference(settings, url, case)
    step, validating = MOMENTS[moment]
    job, outcomes = run_job(settings, case_spec(url, case), preempt_at=step, validating=validating)
    assert outcomes == ["preempted", "succeeded"]
    assert_same_weights(weights, final_weights(settings, job["id"]))
    got_batches, got_epochs = history(settings, job["id"])
    assert got_batches == batches
    assert got_epochs == epochs
    assert job["stopped"] == stopped


def test_the_matrix_exercises_what_it_names(env):
    """The EarlyStopping cases stop early, and restoring the best weights changes them."""
    settings, url = env
    plain = reference(settings, url, "early-stopping")
    best = reference(settings, url, "early-stopping-best-weights")
    assert plain[3]["epoch"] < EPOCHS and best[3]["restored_best_weights"]
    assert any(not np.array_equal(a, b) for a, b in zip(plain[0], best[0], strict=True))
    assert plain[2] == best[2]  # the same epochs; only the final weights differ
