"""``fitfleet logs --follow``: Keras-like progress across a SIGKILLed worker and a resumed attempt."""

from __future__ import annotations

import re
import signal
import subprocess

import pytest

from fitfleet.formatting import format_logs
from service.store.metrics import MetricStore
from tests.integration.jobs_helpers import upload_blobs
from tests.integration.stack import PYTHON, wait_for
from tests.specs import mlp_spec

pytestmark = pytest.mark.slow
EPOCHS = 5


def cli(stack, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**stack.env, "FITFLEET_TOKEN": getattr(stack, "token", None) or ""}
    return subprocess.run(
        [PYTHON, "-m", "fitfleet", *args, "--api", stack.api_url],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_logs_follow_shows_progress_across_a_killed_worker(stack, s3, tmp_path):
    stack.start_api()
    stack.start_reaper()
    w1 = stack.start_worker("w1")
    spec = mlp_spec(
        upload_blobs(s3, n=2000, features=16),
        features=16,
        hidden=32,
        epochs=EPOCHS,
        batch_size=8,
        checkpoint={"every_n_batches": 40},
    )
    status, job = stack.http("POST", "/api/v1/jobs", spec)
    assert status == 201, job
    job_id = job["id"]
    log = tmp_path / "follow.txt"
    env = {**stack.env, "FITFLEET_TOKEN": getattr(stack, "token", None) or ""}
    with open(log, "w") as out:
        follow = subprocess.Popen(
            [PYTHON, "-m", "fitfleet", "logs", job_id, "--follow", "--api", stack.api_url],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        wait_for(lambda: "Epoch 1/" in log.read_text(), 120, 0.1, "the first progress line")
        wait_for(
            lambda: stack.http("GET", f"/api/v1/jobs/{job_id}/checkpoints")[1]["checkpoints"],
            120,
            0.05,
            "a checkpoint",
        )
        stack.kill(w1, signal.SIGKILL)
        w1.wait(10)
        stack.start_worker("w2")
        assert follow.wait(300) == 0, log.read_text()[-3000:]
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait(10)
    lines = log.read_text().splitlines()
    done = stack.job(job_id)
    assert done["state"] == "succeeded" and done["attempts"] == 2
    spe = done["progress"]["steps_per_epoch"]
    assert "-- attempt 2 started; resuming from the latest checkpoint" in lines
    assert lines[-1] == f"-- job {job_id} succeeded"
    rows = MetricStore(stack.env["DATABASE_URL"]).read(job_id, "epoch")["rows"]
    assert len(rows) == EPOCHS
    for row in rows:  # each epoch: its header once, and its line once, as fit(verbose=2) ends it
        assert lines.count(f"Epoch {row['epoch'] + 1}/{EPOCHS}") == 1
        final = re.compile(
            rf"^{spe}/{spe} - \d+s - \d+(s|ms|us)/step - "
            + re.escape(format_logs(row["logs"], verbose=2))
            + "$"
        )
        assert sum(1 for line in lines if final.match(line)) == 1, lines
    assert not any("━" in line for line in lines)  # not a terminal: no bars, as Keras's verbose=2

    status = cli(stack, "status", job_id)
    assert status.returncode == 0 and "succeeded" in status.stdout
    again = cli(stack, "cancel", job_id)  # an ended job cannot be cancelled: the API says 409
    assert again.returncode == 1 and again.stderr.startswith("error: conflict")
