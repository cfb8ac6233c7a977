"""TensorBoard export: a resumed job's metrics read back with TensorBoard's own reader,
one value per step, through the download endpoint and ``fitfleet export tensorboard``."""

from __future__ import annotations

import io
import tarfile
from dataclasses import replace

import numpy as np
import pytest

from fitfleet.cli import main
from service.store.metrics import MetricStore
from service.store.tensorboard import write_event_files

pytest.importorskip("keras")
event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def read_run(folder) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag of one run as ``[(step, value)]``, read by TensorBoard's reader."""
    acc = event_accumulator.EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    return {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


@pytest.fixture
def resumed(served_api):
    """A job preempted at step 4 and resumed from its checkpoint, on the served API's
    database: ``(url, settings, token, job, rows by kind)``."""
    from tests.specs import blobs, mlp_spec
    from tests.unit.attempts import run_job

    url, settings, token = served_api
    x, y = blobs()
    data = f"{settings.home}/train.npz"
    np.savez(data, x=x, y=y)
    settings = replace(settings, heartbeat_seconds=0.2, lease_seconds=30)
    spec = mlp_spec(f"file://{data}", checkpoint={"every_n_batches": 2})
    job, outcomes = run_job(settings, spec, preempt_at=4)
    assert outcomes == ["preempted", "succeeded"]
    metrics = MetricStore(settings.database_url)
    rows = {k: metrics.read(job["id"], k)["rows"] for k in ("batch", "epoch")}
    assert {r["attempt"] for r in rows["batch"]} == {1, 2}
    return url, settings, token, job, rows


def check_runs(folder, rows) -> None:
    train, val = read_run(folder / "train"), read_run(folder / "validation")
    batch = rows["batch"]
    assert [s for s, _ in train["batch_loss"]] == list(range(1, 19))  # once each, in order
    assert [v for _, v in train["batch_loss"]] == pytest.approx(
        [r["logs"]["loss"] for r in batch], rel=1e-6
    )
    epochs = rows["epoch"]
    assert [s for s, _ in train["epoch_loss"]] == [0, 1, 2]
    assert [v for _, v in train["epoch_accuracy"]] == pytest.approx(
        [r["logs"]["accuracy"] for r in epochs], rel=1e-6
    )
    assert sorted(val) == ["epoch_accuracy", "epoch_loss"]  # val_ prefix dropped, as Keras does
    assert [v for _, v in val["epoch_loss"]] == pytest.approx(
        [r["logs"]["val_loss"] for r in epochs], rel=1e-6
    )
    assert not any(t.startswith("epoch_val") for t in train)


def test_resumed_job_reads_back_one_value_per_step(resumed, tmp_path, capsys):
    """Written here, downloaded from the endpoint, and exported by the command line."""
    import urllib.request

    url, settings, token, job, rows = resumed
    counts = write_event_files(MetricStore(settings.database_url), job["id"], tmp_path / "tb")
    assert counts == {"train": 18 + 3, "validation": 3}
    check_runs(tmp_path / "tb", rows)

    req = urllib.request.Request(
        f"{url}/api/v1/jobs/{job['id']}/tensorboard", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(req) as resp:
        assert resp.headers["Content-Type"] == "application/gzip"
        assert "tensorboard.tar.gz" in resp.headers["Content-Disposition"]
        body = resp.read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        names = tar.getnames()
    assert {n.split("/")[0] for n in names} == {"train", "validation"}

    out = tmp_path / "exported"
    assert main(["export", "tensorboard", job["id"], str(out), "--api", url, "--token", token]) == 0
    printed = capsys.readouterr().out
    assert f"tensorboard --logdir {out}" in printed
    check_runs(out, rows)


def test_unknown_job_is_404(served_api, tmp_path, capsys):
    url, _, token = served_api
    code = main(
        ["export", "tensorboard", "0" * 32, str(tmp_path / "x"), "--api", url, "--token", token]
    )
    assert code == 1
    assert "not_found" in capsys.readouterr().err
    assert not (tmp_path / "x" / "train").exists()
