"""Serves the API under gunicorn, started from Python (``fitfleet api``)."""

from __future__ import annotations

import sys

from gunicorn.app.base import BaseApplication
from sqlalchemy.exc import SQLAlchemyError

from service.core.config import Settings


class _ApiServer(BaseApplication):
    """A gunicorn application that loads ``create_app(settings)`` in each worker."""

    def __init__(self, settings: Settings, options: dict):
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        from service.web.app import create_app

        return create_app(self.settings)


def _after_fork(_server, _worker) -> None:
    from service.store.db import dispose_all

    dispose_all()


def _child_exit(_server, worker) -> None:
    from service.ops.prometheus import server_process_exited

    server_process_exited(worker.pid)


def gunicorn_options(settings: Settings, host: str, port: int, workers: int, threads: int) -> dict:
    """The gunicorn settings ``serve`` runs with."""
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return {
        "bind": bind,
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "accesslog": None,
        "errorlog": "-",
        "loglevel": settings.log_level.lower(),
        "graceful_timeout": 30,
        "timeout": 120,
        "post_fork": _after_fork,
        "child_exit": _child_exit,
        "proc_name": "fitfleet-api",
    }


def serve(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 2,
    threads: int = 4,
) -> None:
    """Check the schema, then serve the API until stopped (SIGTERM/SIGINT)."""
    from service.core.errors import FitfleetError
    from service.ops.prometheus import prepare_multiprocess
    from service.store import migrate

    try:
        migrate.check(settings.database_url)
    except FitfleetError as exc:
        sys.exit(f"fitfleet api: {exc.message}")
    except SQLAlchemyError as exc:  # the driver's own connection errors
        from service.core.config import database_problem

        sys.exit(f"fitfleet api: {database_problem(settings, exc)}")
    _after_fork(None, None)
    prepare_multiprocess()  # PROMETHEUS_MULTIPROC_DIR: latency summed over server processes
    _ApiServer(settings, gunicorn_options(settings, host, port, workers, threads)).run()
