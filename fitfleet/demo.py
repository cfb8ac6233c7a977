"""The embedded demo: API, worker and reaper as child processes on SQLite, files and a file broker."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import fitfleet
from fitfleet.client import Client, FitfleetAPIError

EXAMPLES = Path(fitfleet.__file__).resolve().parent.parent / "examples"
PLACEHOLDER = "{examples}"
CHILDREN = ("api", "worker", "reaper")


def fill_examples(spec: dict, folder: str | os.PathLike = EXAMPLES) -> dict:
    """A copy of ``spec`` whose data URLs have ``{examples}`` replaced by ``folder``."""
    spec = json.loads(json.dumps(spec))
    data = spec.get("data")
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, str) and PLACEHOLDER in value:
                data[key] = value.replace(PLACEHOLDER, Path(folder).resolve().as_posix())
    return spec


def load_example(name: str) -> dict:
    """``examples/<name>.json`` with its data URLs pointing at the examples folder."""
    path = EXAMPLES / f"{name}.json"
    if not path.is_file():
        known = sorted(p.stem for p in EXAMPLES.glob("*.json"))
        raise FileNotFoundError(f"no example {name!r} in {EXAMPLES} (known: {known})")
    return fill_examples(json.loads(path.read_text()))


def prepare_env(home: Path, port: int) -> dict[str, str]:
    """Point fitfleet at ``home`` (user-set variables win, FITFLEET_HOME aside)."""
    os.environ["FITFLEET_HOME"] = str(home)
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{home / 'fitfleet.db'}")
    os.environ.setdefault("CELERY_BROKER_URL", "filesystem://")
    os.environ.setdefault("FITFLEET_STORAGE_URL", (home / "store").as_uri())
    os.environ["FITFLEET_API_URL"] = f"http://127.0.0.1:{port}"
    from service.core.config import reset_settings

    reset_settings()
    env = dict(os.environ)
    root = EXAMPLES.parent
    if (root / "pyproject.toml").is_file():  # a source checkout, maybe not pip-installed
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    return env


class Children:
    """The API, worker and reaper processes, each in its own session, logging to a file."""

    def __init__(self, home: Path, port: int):
        self.logs = home / "logs"
        self.port = port
        self.procs: dict[str, subprocess.Popen] = {}
        self.served = False  # the job ended and the demo went on serving

    def start(self, env: dict[str, str]) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        commands = {
            "api": ["api", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
            "worker": ["worker"],
            "reaper": ["reaper"],
        }
        for name in CHILDREN:
            with open(self.logs / f"{name}.log", "ab") as log:
                self.procs[name] = subprocess.Popen(
                    [sys.executable, "-m", "fitfleet", *commands[name]],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )

    def check(self, _job: dict | None = None) -> None:
        """Raise if a child exited, naming its log."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(
                    f"the {name} process exited with status {proc.returncode}; "
                    f"see {self.logs / (name + '.log')}"
                )

    def stop(self, grace: float = 30.0) -> None:
        """SIGTERM each child by pid, then SIGKILL its process group past ``grace`` seconds.

        Each child leads a process group of its own (its session), so what is left of it
        afterwards (a server's worker processes) goes too. Ctrl-C and SIGTERM wait meanwhile.
        """
        previous = {
            sig: signal.signal(sig, signal.SIG_IGN)
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        }
        try:
            for proc in self.procs.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + grace
            for proc in self.procs.values():
                try:
                    proc.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def demo_token(database_url: str) -> str:
    """A new API token for project ``demo`` (its secret exists only in this process)."""
    from service.store.tokens import TokenStore

    return TokenStore(database_url).create("demo", name="demo")[1]


def wait_healthy(client: Client, children: Children, timeout: float = 120.0) -> None:
    """Poll ``/healthz`` until the API answers."""
    deadline = time.monotonic() + timeout
    while True:
        children.check()
        try:
            client.health()
            return
        except FitfleetAPIError:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the API did not answer within {timeout:.0f}s; see {children.logs / 'api.log'}"
                ) from None
            time.sleep(0.5)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


class Stopped(Exception):
    """SIGTERM or SIGHUP arrived: stop everything the demo started."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _stop_on_signals() -> None:
    def stop(signum, _frame):
        raise Stopped(signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)


def default_home() -> Path:
    """The folder the other commands use too: ``$FITFLEET_HOME``, else ``./.fitfleet``."""
    return Path(os.environ.get("FITFLEET_HOME") or ".fitfleet").resolve()


def save_token(home: Path, api_url: str, token: str) -> Path:
    """Keep the demo's token in ``home/token`` (owner-only) for the CLI run from here."""
    from fitfleet.cli_checks import TOKEN_FILE

    path = home / TOKEN_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"api_url": api_url, "token": token}, f)
    os.chmod(path, 0o600)
    return path


def run(
    home: str | None = None,
    port: int = 8000,
    example: str = "digits_cnn",
    keep_running: bool = True,
) -> int:
    """Start everything under ``home``, train one example job, then serve until stopped.

    Returns 0 if the job succeeded (or, when serving on, once stopped by Ctrl-C/SIGTERM).
    """
    home_path = Path(home).resolve() if home else default_home()
    usual_home = home_path == default_home()  # where the other commands look by themselves
    home_path.mkdir(parents=True, exist_ok=True)
    try:
        spec = load_example(example)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not _port_free(port):
        print(
            f"error: port {port} is in use (another `fitfleet demo` or `fitfleet api`?); "
            "stop it, or pick another port with --port",
            file=sys.stderr,
        )
        return 2
    env = prepare_env(home_path, port)
    from service.store.migrate import upgrade

    upgrade(env["DATABASE_URL"])
    token = demo_token(env["DATABASE_URL"])
    children = Children(home_path, port)
    client = Client(env["FITFLEET_API_URL"], token=token)
    _stop_on_signals()
    try:
        children.start(env)
        print(f"fitfleet demo in {home_path} (logs in {children.logs})", flush=True)
        _print_token(home_path, client.url, token, usual_home)
        wait_healthy(client, children)
        job = _train(client, spec, children, home_path)
        if keep_running:
            _serve_until_stopped(client, children, job)
        return 0 if job["state"] == "succeeded" else 1
    except (KeyboardInterrupt, Stopped) as exc:
        print(f"\n{exc or 'interrupted'}; stopping the API, worker and reaper", file=sys.stderr)
        if keep_running and children.served:
            return 0  # serving until stopped is what was asked for
        return 128 + (exc.signum if isinstance(exc, Stopped) else signal.SIGINT)
    except (RuntimeError, FitfleetAPIError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        children.stop()


def _print_token(home: Path, url: str, token: str, usual_home: bool) -> None:
    path = save_token(home, url, token)
    users = (
        "the fitfleet command run from here uses it"
        if usual_home
        else f"the fitfleet command uses it with FITFLEET_HOME={home}"
    )
    print(
        f"API token (project demo): {token}\n"
        f"  saved in {path}: {users} for {url};\n"
        f"  elsewhere: export FITFLEET_TOKEN={token}  (or paste it into the dashboard)",
        flush=True,
    )


def _train(client: Client, spec: dict, children: Children, home: Path) -> dict:
    run = client.submit(spec)
    print(f"job {run.id} submitted ({spec.get('name') or 'job'})")
    print(f"  API:       {client.url}/api/v1/jobs/{run.id}")
    print(f"  dashboard: {client.url}/", flush=True)
    job = run.wait(verbose=1, on_poll=children.check)
    _report(client, run, job, home)
    return job


def _report(client: Client, run, job: dict, home: Path) -> None:
    from fitfleet.formatting import format_logs, position

    epochs = client.all_metrics(run.id, kind="epoch")
    if epochs:
        print(f"final epoch logs: {format_logs(epochs[-1]['logs'])}")
    print("attempts:")
    for a in client.attempts(run.id):
        resumed = a.get("resumed_from_step") or 0
        print(
            f"  #{a['number']} {a['state']} on {a.get('worker')}"
            + (f", resumed from step {resumed}" if resumed else "")
        )
    p = job.get("progress") or {}
    print("checkpoints:")
    for c in client.checkpoints(run.id):
        print(f"  {position(c['step'], p.get('steps_per_epoch'), p.get('epochs'))} {c['uri']}")
    if job["state"] == "succeeded":
        path = client.download(run.id, home / "models" / f"{run.id}.keras")
        print(f"trained model: {path}")
        print("  load it with keras.models.load_model(path)")


def _serve_until_stopped(client: Client, children: Children, job: dict) -> None:
    pids = ", ".join(f"{n} {p.pid}" for n, p in children.procs.items())
    children.served = True
    print(
        f"\nthe dashboard stays up at {client.url}/ ({pids});\n"
        f"  try: fitfleet status {job['id']}   |   fitfleet list   |   "
        f"fitfleet logs {job['id']}\n"
        "  press Ctrl-C to stop (or run the demo with --no-keep)",
        flush=True,
    )
    while True:
        children.check()
        time.sleep(1.0)
