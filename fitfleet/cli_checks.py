"""Checks the command line makes for its user: database and broker reachable, the demo's
saved token, a closed pipe. Each failure is one line naming the URL, setting and fix."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from fitfleet.cli_common import EXIT_FAIL

TOKEN_FILE = "token"  # in FITFLEET_HOME: the demo's token and the API it works for


def silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's last flush raises nothing."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # not a real file descriptor (tests): nothing to flush
        pass


def server_command(fn):
    """A database that does not answer, or has no tables yet, is one line saying what to do."""

    def run(args) -> int:
        try:
            return fn(args)
        except Exception as exc:
            text = database_failure(exc)
            if text is None:
                raise
            print(f"error: {text}", file=sys.stderr)
            return EXIT_FAIL

    run.__doc__ = fn.__doc__
    return run


def database_failure(exc: Exception) -> str | None:
    """The one line for a database that failed a command (URL, setting, fix), else None."""
    from service.core.config import database_problem, get_settings
    from service.core.errors import Unavailable

    if isinstance(exc, Unavailable):
        if exc.__cause__ is None:  # e.g. the schema check: its message names the fix
            return exc.message
        return database_problem(get_settings(), exc.__cause__)
    from sqlalchemy.exc import SQLAlchemyError

    if isinstance(exc, SQLAlchemyError):  # a driver error outside a unit of work
        return database_problem(get_settings(), exc)
    return None


def warn_if_database_down(settings) -> None:
    """Say once, naming the URL, setting and fix, when the database does not answer."""
    from service.core.config import database_problem
    from service.core.errors import Unavailable
    from service.store import migrate

    try:
        migrate.check(settings.database_url)
        return
    except Unavailable as exc:  # the schema check names its own fix
        text = exc.message if exc.__cause__ is None else database_problem(settings, exc.__cause__)
    except Exception as exc:  # noqa: BLE001 - the driver's errors: unreachable, refused, ...
        text = database_problem(settings, exc)
    print(f"warning: {text}; retrying", file=sys.stderr, flush=True)


def warn_if_broker_down(settings) -> None:
    """Say once, naming the URL, setting and fix, when the broker does not answer."""
    if settings.broker_url.startswith("filesystem://"):
        return
    from kombu import Connection

    from service.core.config import broker_problem

    try:
        with Connection(settings.broker_url, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1, timeout=3)
    except Exception:  # noqa: BLE001 - kombu's errors vary by transport
        print(f"warning: {broker_problem(settings)}; waiting for it", file=sys.stderr, flush=True)


def saved_token(api_url: str) -> str | None:
    """The token the demo saved in ``FITFLEET_HOME/token``, if it was made for ``api_url``."""
    path = Path(os.environ.get("FITFLEET_HOME") or ".fitfleet") / TOKEN_FILE
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or saved.get("api_url", "").rstrip("/") != api_url:
        return None
    return saved.get("token") or None
