"""The server-side commands of ``fitfleet``: api, worker, reaper, retention, db, demo.

Their code (Flask, Celery, SQLAlchemy, Keras) is imported only when one of them runs, so
the client commands start without it.
"""

from __future__ import annotations

import argparse
import signal
import threading

from fitfleet.cli_checks import server_command, warn_if_broker_down, warn_if_database_down
from fitfleet.cli_common import EXIT_OK, UsageError, print_json


def add_server_commands(sub) -> None:
    """Add the server-side commands to an argparse subparsers object."""
    p = sub.add_parser("api", help="serve the HTTP API and the dashboard")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=2, help="server worker processes")
    p.set_defaults(handler=cmd_api)
    p = sub.add_parser("worker", help="run a training worker")
    p.add_argument("--queues", default="default", help="comma-separated queue names")
    p.add_argument("--concurrency", type=int, default=1, help="jobs trained at once")
    p.add_argument("--hostname", default=None, help="worker name (default: Celery's)")
    p.set_defaults(handler=cmd_worker)
    p = sub.add_parser("reaper", help="requeue jobs whose worker stopped renewing its lease")
    p.set_defaults(handler=cmd_reaper)
    p = sub.add_parser("retention", help="compact old metric rows, prune ended jobs' checkpoints")
    p.add_argument(
        "--metrics-age-hours",
        type=float,
        default=None,
        help="compact batch rows older than this (default: settings)",
    )
    p.add_argument("--points", type=int, default=None, help="batch rows kept per job")
    p.add_argument("--dry-run", action="store_true", help="report, change nothing")
    p.set_defaults(handler=cmd_retention)
    p = sub.add_parser("db", help="database schema")
    p.add_argument("action", choices=["upgrade", "current"])
    p.set_defaults(handler=cmd_db)
    p = sub.add_parser("demo", help="the embedded default: train an example job, no servers")
    p.add_argument(
        "--home",
        default=None,
        help="folder for everything (default: $FITFLEET_HOME, else ./.fitfleet)",
    )
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--example", default="digits_cnn", help="name of a spec in examples/")
    p.add_argument(
        "--no-keep",
        dest="keep",
        action="store_false",
        help="stop the API, worker and reaper as soon as the job ends (scripts)",
    )
    p.add_argument(
        "--keep-running", dest="keep", action="store_true", help=argparse.SUPPRESS
    )  # the default now; still accepted
    p.set_defaults(handler=cmd_demo, keep=True)


def load_settings():
    """The settings from the environment, with logging configured as they say."""
    from service.core.config import get_settings
    from service.core.logs import configure_from

    settings = get_settings()
    configure_from(settings)  # FITFLEET_LOG_FORMAT: text or JSON lines
    return settings


@server_command
def cmd_api(args) -> int:
    from service.web.server import serve

    serve(load_settings(), args.host, args.port, args.workers)
    return EXIT_OK


@server_command
def cmd_worker(args) -> int:
    from workers.main import run_worker

    queues = [q.strip() for q in args.queues.split(",") if q.strip()]
    if not queues:
        raise UsageError("--queues names no queue")
    settings = load_settings()
    warn_if_database_down(settings)
    warn_if_broker_down(settings)
    status = run_worker(
        settings, queues=queues, concurrency=args.concurrency, hostname=args.hostname
    )
    return status if isinstance(status, int) else EXIT_OK


@server_command
def cmd_reaper(args) -> int:
    from service.ops.reaper import run

    settings = load_settings()
    warn_if_database_down(settings)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    run(settings, stop)
    return EXIT_OK


@server_command
def cmd_retention(args) -> int:
    from service.store import retention

    if args.points is not None and args.points < 1:
        raise UsageError("--points must be at least 1")
    report = retention.run(
        load_settings(),
        metrics_age_hours=args.metrics_age_hours,
        max_points=args.points,
        dry_run=args.dry_run,
    )
    print_json(report.as_dict())
    return EXIT_OK


@server_command
def cmd_db(args) -> int:
    from service.store import migrate

    settings = load_settings()
    if args.action == "upgrade":
        migrate.upgrade(settings.database_url)
    print(migrate.current(settings.database_url) or "empty")
    return EXIT_OK


def cmd_demo(args) -> int:
    from fitfleet import demo

    return demo.run(args.home, args.port, args.example, args.keep)
