"""Real fitfleet processes (API, workers, reaper) for end-to-end tests and benchmarks, over HTTP.

Importable without Flask or Keras: everything runs in child processes started by pid.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from testbed.services import free_port

PYTHON = sys.executable


def wait_for(fn, timeout: float = 30.0, interval: float = 0.2, what: str | None = None):
    """Call ``fn`` until it returns something truthy; that value, or TimeoutError."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"{what or getattr(fn, '__name__', 'condition')} not met "
                f"within {timeout}s (last value: {last!r})"
            )
        time.sleep(interval)


def base_env(
    *,
    database_url: str,
    broker_url: str,
    storage_url: str,
    home: str | os.PathLike,
    aws: dict[str, str] | None = None,
    **extra: str,
) -> dict[str, str]:
    """The environment every fitfleet process of a stack gets: short leases, no GPU."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FITFLEET_", "AWS_"))}
    env.update(
        {
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": broker_url,
            "FITFLEET_STORAGE_URL": storage_url,
            "FITFLEET_HOME": str(home),
            "FITFLEET_LEASE_SECONDS": "4",
            "FITFLEET_HEARTBEAT_SECONDS": "0.5",
            "FITFLEET_REAPER_INTERVAL": "0.5",
            "FITFLEET_METRICS_FLUSH_SECONDS": "0.5",
            "FITFLEET_LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "KERAS_BACKEND": "tensorflow",
            "CUDA_VISIBLE_DEVICES": "",
        }
    )
    env.update(aws or {})
    env.update(extra)
    return env


class Stack:
    """Starts fitfleet commands as child processes, each in its own process group.

    Example:
        stack.start_api(); stack.start_worker("w1")
        status, job = stack.http("POST", "/api/v1/jobs", spec)
    """

    def __init__(self, env: dict[str, str], workdir: str | os.PathLike):
        self.env = dict(env)
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}
        self.api_url: str | None = None
        self.token: str | None = None
        self._count = 0

    # -- processes ----------------------------------------------------------------

    def spawn(self, name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        """Run ``python -m fitfleet ARGS`` with its output in ``<workdir>/<name>.log``."""
        log_path = self.workdir / f"{name}.log"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [PYTHON, "-m", "fitfleet", *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**self.env, **(env or {})},
                start_new_session=True,
            )
        self.procs[name], self.logs[name] = proc, log_path
        return proc

    def create_token(self, project: str = "test", admin: bool = True) -> str:
        """A new API token made with ``fitfleet token create`` against the stack's database."""
        args = ["token", "create", "--project", project, "--output", "json"]
        proc = subprocess.run(
            [PYTHON, "-m", "fitfleet", *args, *(["--admin"] if admin else [])],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"fitfleet token create failed: {proc.stderr[-2000:]}")
        return json.loads(proc.stdout)["token"]

    def start_api(self, timeout: float = 60.0) -> subprocess.Popen:
        """Serve the API on a free port and wait until ``GET /healthz`` answers 200.

        An admin token is created first; :meth:`http` sends it on every call.
        """
        if self.token is None:
            self.token = self.create_token()
        port = free_port()
        proc = self.spawn("api", "api", "--host", "127.0.0.1", "--port", str(port))
        self.api_url = f"http://127.0.0.1:{port}"
        self.env["FITFLEET_API_URL"] = self.api_url

        def healthy():
            if proc.poll() is not None:
                raise RuntimeError(
                    f"the API exited with code {proc.returncode}:\n{self.tail('api')}"
                )
            try:
                return self.http("GET", "/healthz")[0] == 200
            except OSError:
                return False

        try:
            wait_for(healthy, timeout, 0.2, "API health")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n{self.tail('api')}") from None
        return proc

    def start_worker(
        self, name: str | None = None, queues: str = "default", env: dict[str, str] | None = None
    ) -> subprocess.Popen:
        """Run a worker consuming ``queues`` (comma-separated) as Celery host ``name``."""
        self._count += 1
        name = name or f"worker{self._count}"
        hostname = name if "@" in name else f"{name}@fitfleet-test"
        return self.spawn(name, "worker", "--queues", queues, "--hostname", hostname, env=env)

    def start_reaper(self) -> subprocess.Popen:
        return self.spawn("reaper", "reaper")

    def kill(
        self, proc: subprocess.Popen | str, sig: int = signal.SIGKILL, group: bool = False
    ) -> None:
        """Send ``sig`` to one process by pid, or to its whole process group."""
        proc = self.procs[proc] if isinstance(proc, str) else proc
        if proc.poll() is not None:
            return
        try:
            if group:
                os.killpg(proc.pid, sig)
            else:
                os.kill(proc.pid, sig)
        except ProcessLookupError:
            pass

    def stop_all(self, timeout: float = 15.0) -> None:
        """SIGTERM each process, wait, then SIGKILL its group (pool children included)."""
        for proc in self.procs.values():
            self.kill(proc, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for proc in self.procs.values():
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass

    # -- logs -----------------------------------------------------------------------

    def tail(self, name: str, chars: int = 6000) -> str:
        path = self.logs.get(name)
        if path is None or not path.exists():
            return f"(no log for {name})"
        text = path.read_text(errors="replace")
        return text[-chars:]

    def all_logs(self, chars: int = 6000) -> dict[str, str]:
        return {name: self.tail(name, chars) for name in self.logs}

    # -- HTTP -------------------------------------------------------------------------

    def http(self, method: str, path: str, json_body=None, timeout: float = 30.0):
        """Call the API; returns (status, parsed JSON, or raw bytes when it is not JSON)."""
        if self.api_url is None:
            raise RuntimeError("start_api() first")
        data = None if json_body is None else json.dumps(json_body).encode()
        req = urllib.request.Request(self.api_url + path, data=data, method=method)
        if self.token:  # not sent on to a redirect target such as a presigned URL
            req.add_unredirected_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, _decode(resp.read(), resp.headers.get("Content-Type"))
        except urllib.error.HTTPError as err:
            return err.code, _decode(err.read(), err.headers.get("Content-Type"))

    def job(self, job_id: str) -> dict:
        status, body = self.http("GET", f"/api/v1/jobs/{job_id}")
        if status != 200:
            raise AssertionError(f"GET job {job_id} answered {status}: {body!r}")
        return body

    def wait_state(self, job_id: str, states, timeout: float = 120.0) -> dict:
        """Poll the job until its state is one of ``states``; returns the job."""
        states = {states} if isinstance(states, str) else set(states)

        def reached():
            job = self.job(job_id)
            return job if job["state"] in states else None

        return wait_for(reached, timeout, 0.25, f"job {job_id} in {sorted(states)}")


def _decode(raw: bytes, content_type: str | None):
    if content_type and "json" in content_type:
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw
