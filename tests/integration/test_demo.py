"""``fitfleet demo`` as a newcomer runs it: from a clean folder, with no fitfleet variables set."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.integration.stack import wait_for

ROOT = Path(__file__).resolve().parents[2]
SERVING = re.compile(r"the dashboard stays up at (\S+) \(api (\d+), worker (\d+), reaper (\d+)\)")


def _clean_env() -> dict[str, str]:
    """The environment minus every setting fitfleet reads: only the defaults apply."""
    drop = ("DATABASE_URL", "CELERY_BROKER_URL", "AWS_")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("FITFLEET_") and not k.startswith(drop)
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _fitfleet(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fitfleet", *args],
        check=False,
        cwd=cwd,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def demo(tmp_path):
    """Start the demo (mlp_csv, the quickest example) in an empty folder; SIGKILL it at the end."""
    port = free_port()
    log = tmp_path / "demo.out"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fitfleet", "demo", "--example", "mlp_csv", "--port", str(port)],
            cwd=tmp_path,
            env=_clean_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        yield proc, log, port
    finally:
        if proc.poll() is None:  # the test failed before stopping it: stop what it started
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)


def test_demo_serves_until_sigterm_then_stops_every_process(demo, tmp_path):
    proc, log, port = demo
    match = wait_for(
        lambda: SERVING.search(log.read_text()) or proc.poll() is not None,
        600,
        0.5,
        "the demo's job to end and the dashboard to stay up",
    )
    assert match is not True, log.read_text()[-3000:]
    assert match[1] == f"http://127.0.0.1:{port}/"
    pids = [int(p) for p in match.groups()[1:]]
    assert all(_alive(p) for p in pids)
    text = log.read_text()
    job_id = re.search(r"job (\w{32}) submitted", text)[1]
    assert re.search(r"Epoch \d+/\d+ \d+/\d+ \(step \d+\) file://", text), text[-2000:]
    assert (tmp_path / ".fitfleet" / "token").stat().st_mode & 0o777 == 0o600

    # From the folder the demo ran in, with no variable set, the CLI finds it all.
    status = _fitfleet(tmp_path, "status", job_id, "--api", f"http://127.0.0.1:{port}")
    assert status.returncode == 0, status.stderr
    assert "succeeded" in status.stdout
    counts = [(int(a), int(b)) for a, b in re.findall(r"(\d+)/(\d+)", status.stdout)]
    assert counts and all(0 < a <= b for a, b in counts), status.stdout  # never 27/26
    token = _fitfleet(tmp_path, "token", "create", "--project", "demo")
    assert token.returncode == 0, token.stderr
    assert token.stdout.startswith("ff_")

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(90) == 0, log.read_text()[-2000:]
    gone = wait_for(lambda: not any(_alive(p) for p in pids), 30, 0.2, "the children to exit")
    assert gone
    assert "stopping the API, worker and reaper" in log.read_text()


def _children(pid: int) -> list[int]:
    """The pids whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_sigterm_while_training_stops_every_process(demo):
    proc, log, _ = demo
    wait_for(
        lambda: "submitted" in log.read_text() or proc.poll() is not None,
        300,
        0.2,
        "the demo's job",
    )
    pids = _children(proc.pid)
    assert len(pids) >= 3, (pids, log.read_text()[-2000:])  # the API, the worker, the reaper
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(90) == 128 + signal.SIGTERM, log.read_text()[-2000:]
    assert wait_for(lambda: not any(_alive(p) for p in pids), 30, 0.2, "the children to exit")
    assert "SIGTERM; stopping the API, worker and reaper" in log.read_text()


def test_demo_no_keep_exits_by_itself(tmp_path):
    port = free_port()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "fitfleet",
            "demo",
            "--example",
            "mlp_csv",
            "--port",
            str(port),
            "--no-keep",
        ],
        check=False,
        cwd=tmp_path,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
        start_new_session=True,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "trained model: " in done.stdout and "stays up" not in done.stdout
    time.sleep(0.5)
    import socket

    with socket.socket() as s:  # nothing is left listening on the demo's port
        assert s.connect_ex(("127.0.0.1", port)) != 0
