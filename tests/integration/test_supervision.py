"""``fitfleet worker --concurrency 2`` with real processes: SIGKILL one child mid-job; its job
resumes at once on the other child or the replacement (not after the lease) and ends
bit-identical, and the dead child is replaced. A child the OOM killer took fails its job
with ``resource_exhausted``."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.integration.stack import wait_for
from tests.integration.test_crash import (
    assert_same_run,
    attempts,
    long_spec,
    reference_weights,
    submit,
)

pytestmark = pytest.mark.slow
LEASE = 300  # seconds: far longer than the test may wait, so only the parent can hand it back


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def live_workers(stack, prefix: str) -> dict[str, str]:
    workers = stack.http("GET", "/api/v1/fleet")[1]["workers"]
    return {
        w["name"]: w["state"]
        for w in workers
        if w["name"].startswith(prefix) and w["state"] in ("idle", "busy")
    }


def test_a_killed_child_is_replaced_and_its_job_resumes_at_once(stack, s3, tmp_path):
    stack.env["FITFLEET_LEASE_SECONDS"] = str(LEASE)
    stack.start_api()
    stack.start_reaper()
    pool = stack.spawn(
        "pool",
        "worker",
        "--queues",
        "default",
        "--concurrency",
        "2",
        "--hostname",
        "pool@fitfleet-test",
    )
    spec = long_spec(s3)
    ref = reference_weights(stack, spec, tmp_path)
    wait_for(lambda: len(live_workers(stack, "pool@")) == 2, 120, 0.2, "two idle children")
    job_id = submit(stack, spec)
    wait_for(lambda: stack.job(job_id)["progress"]["step"] > 250, 180, 0.05, "progress")
    holder = stack.job(job_id)["worker"]  # "pool@fitfleet-test-<i>:<pid>"
    place, pid = holder.rsplit(":", 1)
    assert parent_of(int(pid)) == pool.pid  # a child of the parent this test started
    os.kill(int(pid), signal.SIGKILL)
    killed = time.monotonic()

    def resumed():
        tried = attempts(stack, job_id)
        return tried if len(tried) == 2 and tried[1]["state"] in ("running", "succeeded") else None

    tried = wait_for(resumed, 120, 0.1, "second attempt")
    assert time.monotonic() - killed < LEASE / 2  # the lease did not run out: the parent acted
    assert tried[0]["state"] == "lost" and tried[0]["error"]["code"] == "worker_died"
    assert tried[0]["error"]["message"] == "the worker process was killed by SIGKILL"
    assert tried[1]["worker"] != holder

    def replaced():  # the same place, a new pid
        return [n for n in live_workers(stack, place + ":") if n != holder]

    wait_for(replaced, 120, 0.2, "replacement child")
    done = stack.wait_state(job_id, ["succeeded", "failed"], timeout=300)
    assert done["state"] == "succeeded", done["error"]
    tried = attempts(stack, job_id)
    assert [a["state"] for a in tried] == ["lost", "succeeded"]
    assert tried[1]["resumed_from_step"] >= 240 and tried[1]["resumed_from_step"] % 40 == 0
    assert_same_run(stack, job_id, ref, tmp_path)
    assert pool.poll() is None  # the parent is still serving
    assert "replacing it" in stack.tail("pool", 200000)


def test_an_out_of_memory_kill_fails_the_job_saying_so(stack, s3, tmp_path):
    """The kernel's OOM kill is played by SIGKILL plus the cgroup's oom_kill count rising."""
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir()
    (cgroup / "memory.events").write_text("oom 0\noom_kill 0\n")
    (cgroup / "memory.max").write_text(f"{768 << 20}\n")
    stack.env["FITFLEET_CGROUP_ROOT"] = str(cgroup)
    stack.start_api()
    pool = stack.spawn(
        "pool",
        "worker",
        "--queues",
        "default",
        "--concurrency",
        "2",
        "--hostname",
        "pool@fitfleet-test",
    )
    job_id = submit(stack, long_spec(s3, max_attempts=1))
    wait_for(lambda: stack.job(job_id)["progress"]["step"] > 50, 180, 0.05, "progress")
    pid = int(stack.job(job_id)["worker"].rsplit(":", 1)[1])
    assert parent_of(pid) == pool.pid
    (cgroup / "memory.events").write_text("oom 1\noom_kill 1\n")
    os.kill(pid, signal.SIGKILL)
    done = stack.wait_state(job_id, ["failed", "succeeded"], timeout=60)  # no reaper runs
    assert done["error"]["code"] == "resource_exhausted"
    assert "ran out of memory on every attempt (1 of max_attempts=1)" in done["error"]["message"]
    assert "memory limit 768 MiB" in done["error"]["message"]
    (attempt,) = attempts(stack, job_id)
    assert attempt["state"] == "lost" and attempt["error"]["code"] == "resource_exhausted"
    assert str(cgroup) not in done["error"]["message"]  # no server path
