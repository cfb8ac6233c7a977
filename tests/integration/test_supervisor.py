"""The ``--concurrency N`` parent: a dead child's job is released at once, an out-of-memory
kill is named, the child is replaced. Real child processes (a sleeping Python), SQLite and
PostgreSQL, the file broker; the cgroup files are a folder of the test's own."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from service.core.config import Settings
from service.store.jobs import JobStore
from workers import oom
from workers.supervisor import Supervisor

MiB = 1 << 20


class Sleepers(Supervisor):
    """Children that only sleep: the test plays their jobs in the database."""

    def command(self, slot):
        return [sys.executable, "-c", "import time; time.sleep(120)"]


@pytest.fixture
def cgroup(tmp_path):
    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    (root / "memory.max").write_text(f"{512 * MiB}\n")
    return root


@pytest.fixture
def parent(db_url, tmp_path, cgroup):
    settings = Settings.from_env(
        {},
        database_url=db_url,
        broker_url="filesystem://",
        storage_url=(tmp_path / "store").as_uri(),
        home=str(tmp_path),
        cgroup_root=str(cgroup),
    )
    sup = Sleepers(settings, ["default"], 2, "pool@test")
    try:
        yield sup
    finally:
        for slot in sup.slots:  # end only the children this test started, by pid
            if slot.proc is not None and slot.proc.poll() is None:
                os.kill(slot.proc.pid, signal.SIGKILL)
                slot.proc.wait(10)


def _job(store: JobStore, max_attempts: int = 3) -> str:
    return store.create(
        {"name": "j", "data": {}}, epochs=1, summary=None, max_attempts=max_attempts
    )["id"]


def _kill(slot) -> None:
    os.kill(slot.proc.pid, signal.SIGKILL)
    slot.proc.wait(10)


def _wait_started(sup: Supervisor, slot, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while slot.proc is None and time.monotonic() < deadline:
        sup._check(slot)
        time.sleep(0.05)
    assert slot.proc is not None, "the dead child was not replaced"


def test_a_dead_childs_job_is_released_at_once_and_the_child_replaced(parent, tmp_path):
    store = JobStore(parent.settings.database_url)
    for slot in parent.slots:
        parent._start(slot)
    first, second = parent.slots
    job_id = _job(store)
    other = _job(store)
    store.claim(job_id, f"{first.name}:{first.proc.pid}", 600)  # a lease far from running out
    store.claim(other, f"{second.name}:{second.proc.pid}", 600)
    dead_pid = first.proc.pid
    _kill(first)
    parent._check(first)
    got = store.get(job_id)
    assert got["state"] == "queued" and got["worker"] is None  # not waiting for the lease
    (attempt,) = store.attempts(job_id)
    assert attempt["state"] == "lost" and attempt["error"]["code"] == "worker_died"
    assert attempt["error"]["message"] == "the worker process was killed by SIGKILL"
    assert store.get(other)["state"] == "running"  # the sibling's job is its own
    sent = [m.read_text() for m in (tmp_path / "broker" / "out").glob("*.msg")]
    assert len(sent) == 1 and job_id in sent[0]  # sent again: a warm sibling takes it now
    _wait_started(parent, first)
    assert first.proc.pid != dead_pid and first.proc.poll() is None
    assert first.name == "pool@test-0"  # the replacement takes the same place (GPU, port)


def test_the_replacement_waits_while_an_idle_worker_takes_the_job(parent):
    """Its start-up would take the CPU from the restore: it starts once the job trains again."""
    from service.store.fleet import FleetStore

    store = JobStore(parent.settings.database_url)
    FleetStore(store.url).report(
        "pool@test-1:77", hostname="h", pid=77, queues=["default"], state="idle"
    )
    slot = parent.slots[0]
    parent._start(slot)
    job_id = _job(store)
    store.claim(job_id, f"{slot.name}:{slot.proc.pid}", 600)
    _kill(slot)
    parent._check(slot)
    assert slot.handing_off == [job_id] and store.get(job_id)["state"] == "queued"
    for _ in range(5):
        time.sleep(0.1)
        parent._check(slot)
    assert slot.proc is None  # still waiting: the job is not claimed yet
    again = store.claim(job_id, "pool@test-1:77", 600)  # the idle sibling takes it ...
    store.mark_resumed(job_id, again.attempt_id, 40)  # ... and restores its checkpoint
    parent._check(slot)
    assert slot.proc is None  # restoring is not training yet
    store.renew(job_id, again.attempt_id, 600, {"step": 41})  # its first batch is trained
    _wait_started(parent, slot, timeout=5)
    assert slot.handing_off == []


def test_an_out_of_memory_kill_is_resource_exhausted_with_the_limit(parent, cgroup):
    store = JobStore(parent.settings.database_url)
    job_id = _job(store, max_attempts=2)
    slot = parent.slots[0]
    for number in (1, 2):
        parent._start(slot)
        store.claim(job_id, f"{slot.name}:{slot.proc.pid}", 600)
        (cgroup / "memory.events").write_text(f"oom 2\noom_kill {number + 1}\n")  # the kernel
        _kill(slot)
        parent._check(slot)
        attempt = store.attempts(job_id)[-1]
        assert attempt["error"]["code"] == "resource_exhausted"
        assert "out-of-memory killer (memory limit 512 MiB)" in attempt["error"]["message"]
    ended = store.get(job_id)
    assert ended["state"] == "failed" and ended["error"]["code"] == "resource_exhausted"
    assert "ran out of memory on every attempt (2 of max_attempts=2)" in ended["error"]["message"]


def test_a_sigkill_without_an_oom_kill_is_not_called_memory(parent, cgroup):
    store = JobStore(parent.settings.database_url)
    job_id = _job(store)
    slot = parent.slots[0]
    parent._start(slot)
    store.claim(job_id, f"{slot.name}:{slot.proc.pid}", 600)
    _kill(slot)  # memory.events still says oom_kill 1, as when the parent started
    parent._check(slot)
    assert store.attempts(job_id)[0]["error"]["code"] == "worker_died"


def test_a_child_that_dies_at_start_is_restarted_with_a_growing_delay(parent):
    slot = parent.slots[0]
    delays = []
    for _ in range(3):
        parent._start(slot)
        _kill(slot)
        parent._check(slot)
        delays.append(slot.restart_at - time.monotonic())
    assert delays[0] < delays[1] < delays[2] <= 30


def test_cgroup_files(tmp_path):
    assert oom.oom_kills(str(tmp_path)) is None and oom.memory_limit(str(tmp_path)) is None
    (tmp_path / "memory.events").write_text("oom 0\noom_kill 4\n")
    (tmp_path / "memory.max").write_text("max\n")
    assert oom.oom_kills(str(tmp_path)) == 4 and oom.memory_limit(str(tmp_path)) is None
    v1 = tmp_path / "v1"
    (v1 / "memory").mkdir(parents=True)
    (v1 / "memory" / "memory.oom_control").write_text(
        "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"
    )
    (v1 / "memory" / "memory.limit_in_bytes").write_text(f"{3 * 1024 * MiB}\n")
    assert oom.oom_kills(str(v1)) == 2 and oom.memory_limit(str(v1)) == 3 * 1024 * MiB
    assert oom.describe(3 * 1024 * MiB) == "memory limit 3 GiB"
    assert oom.describe(512 * MiB) == "memory limit 512 MiB"
    assert "no cgroup memory limit" in oom.describe(None)
    (v1 / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    assert oom.memory_limit(str(v1)) is None  # v1's "unlimited"
