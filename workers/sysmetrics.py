"""System metrics of a training process: its CPU and memory and, where NVML finds GPUs,
each GPU's utilisation and memory, sampled by a thread every few seconds.

Values are named as the job's ``system`` metric rows hold them:

- ``cpu_percent``: the process's CPU time over the wall time since the last sample, in
  percent of one core (a process busy on four cores reads 400);
- ``memory_rss_bytes``: its resident set size (Linux ``/proc``; absent elsewhere);
- ``gpuN_utilization_percent``, ``gpuN_memory_used_bytes``, ``gpuN_memory_total_bytes``
  for each GPU the process may use, ``N`` counted as TensorFlow counts them (the order
  of ``CUDA_VISIBLE_DEVICES`` when it is set).

A machine without the NVML library (package ``nvidia-ml-py``) or without GPUs reports no
GPU values; a sample that fails is skipped with a warning, never an error of the job.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

log = logging.getLogger("fitfleet.worker")


def rss_bytes() -> int | None:
    """The process's resident set size, from ``/proc/self/statm`` (None where it has none)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class CpuClock:
    """CPU percent of this process between two calls of :meth:`percent`."""

    def __init__(self):
        self._cpu, self._wall = self._now()

    @staticmethod
    def _now() -> tuple[float, float]:
        t = os.times()
        return t.user + t.system, time.monotonic()

    def percent(self) -> float | None:
        cpu, wall = self._now()
        d_cpu, d_wall = cpu - self._cpu, wall - self._wall
        self._cpu, self._wall = cpu, wall
        return None if d_wall <= 0 else round(100.0 * d_cpu / d_wall, 2)


class Gpus:
    """The GPUs this process may use, read through NVML; empty without NVML or GPUs."""

    def __init__(self, environ: dict[str, str] | None = None):
        self.handles: list = []
        self._nvml = None
        try:
            import pynvml

            pynvml.nvmlInit()
        except Exception:  # no library, no driver, no GPU: simply not reported
            log.debug("NVML unavailable; GPU metrics not reported", exc_info=True)
            return
        self._nvml = pynvml
        try:
            self.handles = self._visible(pynvml, os.environ if environ is None else environ)
        except Exception:
            log.warning("NVML found no usable GPU handle; GPU metrics not reported", exc_info=True)
            self.handles = []

    @staticmethod
    def _visible(nvml, environ) -> list:
        listed = environ.get("CUDA_VISIBLE_DEVICES")
        if listed is None:
            return [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]
        handles = []
        for item in (x.strip() for x in listed.split(",")):
            if not item:
                continue
            if item.isdigit():
                handles.append(nvml.nvmlDeviceGetHandleByIndex(int(item)))
            elif item.startswith(("GPU-", "MIG-")):
                handles.append(nvml.nvmlDeviceGetHandleByUUID(item))
            else:  # CUDA stops at the first entry it cannot read, and so do we
                break
        return handles

    def sample(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for i, h in enumerate(self.handles):
            try:
                util = self._nvml.nvmlDeviceGetUtilizationRates(h)
                mem = self._nvml.nvmlDeviceGetMemoryInfo(h)
            except Exception:  # e.g. a MIG slice that reports no utilisation
                log.debug("NVML sample of GPU %d failed", i, exc_info=True)
                continue
            out[f"gpu{i}_utilization_percent"] = float(util.gpu)
            out[f"gpu{i}_memory_used_bytes"] = float(mem.used)
            out[f"gpu{i}_memory_total_bytes"] = float(mem.total)
        return out

    def close(self) -> None:
        if self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                log.debug("NVML shutdown failed", exc_info=True)
            self._nvml = None


class SystemSampler:
    """Calls ``sink(values)`` every ``seconds`` from a daemon thread until :meth:`stop`.

    Example:
        sampler = SystemSampler(recorder.record_system, seconds=10)
        sampler.start()
        ...  # train
        sampler.stop()
    """

    def __init__(self, sink: Callable[[dict[str, float]], None], seconds: float):
        self.sink, self.seconds = sink, seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cpu: CpuClock | None = None
        self._gpus: Gpus | None = None
        self.samples = 0

    def start(self) -> SystemSampler:
        if self.seconds > 0:
            self._cpu, self._gpus = CpuClock(), Gpus()
            self._thread = threading.Thread(target=self._loop, name="system-metrics", daemon=True)
            self._thread.start()
        return self

    def sample(self) -> dict[str, float]:
        """One sample now: CPU since the previous one, memory, GPUs."""
        values: dict[str, float] = {}
        if (cpu := self._cpu.percent()) is not None:
            values["cpu_percent"] = cpu
        if (rss := rss_bytes()) is not None:
            values["memory_rss_bytes"] = float(rss)
        values.update(self._gpus.sample())
        return values

    def _loop(self) -> None:
        while not self._stop.wait(self.seconds):
            try:
                self.sink(self.sample())
                self.samples += 1
            except Exception:  # a side channel: training goes on
                log.warning("system metrics sample failed", exc_info=True)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._gpus is not None:
            self._gpus.close()
