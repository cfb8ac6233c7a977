"""System metrics: the sampler's values, GPUs through NVML (or none), and the ``system``
rows an attempt stores and the metrics API serves."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pytest

from service.store.metrics import MetricStore
from workers.sysmetrics import CpuClock, Gpus, SystemSampler, rss_bytes


def test_sample_has_cpu_and_memory_of_this_process():
    seen = []
    sampler = SystemSampler(seen.append, seconds=0.05).start()
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline or sampler.samples < 2:
        sum(range(1000))
    sampler.stop()
    assert all(s["cpu_percent"] >= 0 for s in seen) and max(s["cpu_percent"] for s in seen) > 0
    ballast = np.ones(32_000_000, np.uint8)  # 32 MB more resident memory
    assert rss_bytes() >= seen[-1]["memory_rss_bytes"] + 30_000_000
    del ballast


def test_cpu_clock_reads_the_cpu_time_used_over_the_wall_time():
    import resource

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    clock, c0, w0 = CpuClock(), cpu(), time.monotonic()
    while cpu() - c0 < 0.2:  # 0.2 s of CPU, however loaded the machine is
        sum(range(1000))
    expected = 100 * (cpu() - c0) / (time.monotonic() - w0)
    assert clock.percent() == pytest.approx(expected, rel=0.25)


def test_sampling_off_starts_no_thread():
    sampler = SystemSampler(lambda v: None, seconds=0).start()
    assert sampler._thread is None
    sampler.stop()


def test_cpu_clock_of_an_idle_process_is_near_zero():
    clock = CpuClock()
    time.sleep(0.2)
    assert clock.percent() < 25


class FakeNvml:
    """The few NVML calls the sampler makes, for two GPUs (the second one's UUID known)."""

    def __init__(self):
        self.uuids = {"GPU-aaaa": 0, "GPU-bbbb": 1}

    def nvmlDeviceGetCount(self):
        return 2

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetHandleByUUID(self, uuid):
        return self.uuids[uuid]

    def nvmlDeviceGetUtilizationRates(self, h):
        return SimpleNamespace(gpu=[55, 7][h])

    def nvmlDeviceGetMemoryInfo(self, h):
        return SimpleNamespace(used=[1000, 2000][h], total=8000)


@pytest.mark.parametrize(
    "visible, handles",
    [(None, [0, 1]), ("1", [1]), ("GPU-bbbb,0", [1, 0]), ("", []), ("0,junk,1", [0])],
)
def test_visible_gpus_follow_cuda_visible_devices(visible, handles):
    env = {} if visible is None else {"CUDA_VISIBLE_DEVICES": visible}
    assert Gpus._visible(FakeNvml(), env) == handles


def test_gpu_values_are_named_in_visible_order():
    gpus = Gpus.__new__(Gpus)
    gpus._nvml, gpus.handles = FakeNvml(), [1]
    assert gpus.sample() == {
        "gpu0_utilization_percent": 7.0,
        "gpu0_memory_used_bytes": 2000.0,
        "gpu0_memory_total_bytes": 8000.0,
    }


def test_no_gpu_means_no_gpu_values():
    gpus = Gpus()  # this machine: NVML finds no driver, or no GPU
    try:
        import pynvml

        pynvml.nvmlInit()
        count = pynvml.nvmlDeviceGetCount()
    except Exception:  # noqa: BLE001 - no library, no driver or no GPU
        count = 0
    assert len(gpus.handles) == count
    if count == 0:
        assert gpus.sample() == {}
    gpus.close()


@pytest.mark.parametrize("seconds, expect", [(0.05, True), (0, False)])
def test_attempt_stores_system_rows_and_the_api_serves_them(tmp_path, seconds, expect):
    pytest.importorskip("keras")
    from tests.conftest import embedded_settings
    from tests.specs import blobs, mlp_spec
    from tests.unit.attempts import run_job

    x, y = blobs()
    np.savez(tmp_path / "train.npz", x=x, y=y)
    settings = embedded_settings(tmp_path, system_metrics_seconds=seconds)
    job, outcomes = run_job(settings, mlp_spec((tmp_path / "train.npz").as_uri()))
    assert outcomes == ["succeeded"]
    rows = MetricStore(settings.database_url).read(job["id"], "system")["rows"]
    if not expect:
        assert rows == []
        return
    assert rows, "no system sample stored"
    steps = [r["step"] for r in rows]
    assert steps == sorted(set(steps)) and 0 <= steps[0] and steps[-1] <= 18
    for r in rows:
        assert r["logs"]["memory_rss_bytes"] > 10_000_000
        assert r["logs"]["cpu_percent"] >= 0
        assert r["attempt"] == 1 and r["batch"] is None

    from dataclasses import replace

    from service.web.app import create_app

    app = create_app(replace(settings, auth="off"))
    got = app.test_client().get(
        f"/api/v1/jobs/{job['id']}/metrics?kind=system&max_points=3&metric=cpu_percent"
    )
    assert got.status_code == 200, got.get_json()
    body = got.get_json()
    assert body["kind"] == "system" and body["rows"][-1]["step"] == steps[-1]
    assert len(body["rows"]) <= 3
