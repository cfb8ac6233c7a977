"""The ``fitfleet`` command line: its parser and entry point (the commands live beside it)."""

from __future__ import annotations

import argparse
import sys

from fitfleet.cli_checks import silence_stdout
from fitfleet.cli_common import EXIT_FAIL, EXIT_OK, EXIT_PIPE, EXIT_USAGE, UsageError
from fitfleet.cli_export import add_export_commands
from fitfleet.cli_jobs import add_job_commands
from fitfleet.cli_projects import add_project_commands
from fitfleet.cli_server import add_server_commands
from fitfleet.cli_sweeps import add_sweep_commands
from fitfleet.cli_tokens import add_token_commands
from fitfleet.cli_webhooks import add_webhook_commands
from fitfleet.client import FitfleetAPIError

# What the `server` extra installs: without it the client commands still work.
SERVER_PACKAGES = frozenset(
    {
        "flask",
        "werkzeug",
        "celery",
        "kombu",
        "redis",
        "sqlalchemy",
        "alembic",
        "boto3",
        "botocore",
        "psycopg",
        "gunicorn",
        "prometheus_client",
        "plotly",
        "pydantic",
        "optuna",
        "keras",
        "tensorflow",
        "pyarrow",
    }
)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help exits 0, bad usage 2
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if getattr(args, "handler", None) is None:
        parser.print_usage(sys.stderr)
        return EXIT_USAGE
    try:
        return args.handler(args) or EXIT_OK
    except FitfleetAPIError as exc:
        print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
        return EXIT_FAIL
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `fitfleet logs ID | head`: the reader has gone, stop quietly
        silence_stdout()
        return EXIT_PIPE
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in SERVER_PACKAGES:
            raise
        print(
            f"error: `fitfleet {args.command}` runs the server side, which needs "
            f"{exc.name!r}: install it with pip install 'fitfleet[server]' (or "
            "'fitfleet[cpu]' / 'fitfleet[gpu]' for a training worker)",
            file=sys.stderr,
        )
        return EXIT_USAGE


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of every command."""
    parser = argparse.ArgumentParser(
        prog="fitfleet",
        description="Keras fit as a service.",
        epilog="exit status: 0 done (or the job succeeded), 1 the API answered an error or "
        "could not be reached, 2 bad usage, 3 the job failed or was cancelled "
        "(status, logs --follow, submit --follow), 141 the output was closed "
        "(| head)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_server_commands(sub)
    add_token_commands(sub)
    add_project_commands(sub)
    add_job_commands(sub)
    add_export_commands(sub)
    add_webhook_commands(sub)
    add_sweep_commands(sub)
    return parser
