"""The ``fitfleet`` command line: server-side commands (imported lazily) and API client commands."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path

from fitfleet.cli_checks import (
    saved_token,
    server_command,
    silence_stdout,
    warn_if_broker_down,
    warn_if_database_down,
)
from fitfleet.cli_tokens import add_token_commands
from fitfleet.client import ENDED, Client, FitfleetAPIError
from fitfleet.formatting import format_logs, format_progress, format_summary, format_table, position

EXIT_OK, EXIT_API, EXIT_USAGE, EXIT_JOB, EXIT_PIPE = 0, 1, 2, 3, 141


class UsageError(Exception):
    """A command line that cannot be acted on (exit status 2)."""


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
        return EXIT_API
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `fitfleet logs ID | head`: the reader has gone, stop quietly
        silence_stdout()
        return EXIT_PIPE


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of every command."""
    parser = argparse.ArgumentParser(
        prog="fitfleet", description="Keras fit as a service.",
        epilog="exit status: 0 done (or the job succeeded), 1 the API answered an error or "
               "could not be reached, 2 bad usage, 3 the job failed or was cancelled "
               "(status, logs --follow, submit --follow), 141 the output was closed "
               "(| head)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _server_commands(sub)
    add_token_commands(sub)
    _client_commands(sub)
    return parser


def _server_commands(sub) -> None:
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
    p.add_argument("--metrics-age-hours", type=float, default=None,
                   help="compact batch rows older than this (default: settings)")
    p.add_argument("--points", type=int, default=None, help="batch rows kept per job")
    p.add_argument("--dry-run", action="store_true", help="report, change nothing")
    p.set_defaults(handler=cmd_retention)
    p = sub.add_parser("db", help="database schema")
    p.add_argument("action", choices=["upgrade", "current"])
    p.set_defaults(handler=cmd_db)
    p = sub.add_parser("demo", help="the embedded default: train an example job, no servers")
    p.add_argument("--home", default=None,
                   help="folder for everything (default: $FITFLEET_HOME, else ./.fitfleet)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--example", default="digits_cnn", help="name of a spec in examples/")
    p.add_argument("--no-keep", dest="keep", action="store_false",
                   help="stop the API, worker and reaper as soon as the job ends (scripts)")
    p.add_argument("--keep-running", dest="keep", action="store_true",
                   help=argparse.SUPPRESS)  # the default now; still accepted
    p.set_defaults(handler=cmd_demo, keep=True)


def _client_commands(sub) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--api", default=None, help="API URL (default: $FITFLEET_API_URL)")
    common.add_argument("--token", default=None, help="API token (default: $FITFLEET_TOKEN)")
    common.add_argument("--output", choices=["text", "json"], default="text")
    p = sub.add_parser("submit", parents=[common], help="submit a job spec (JSON file, - for stdin)")
    p.add_argument("spec")
    p.add_argument("--follow", action="store_true", help="show progress until the job ends")
    p.set_defaults(handler=cmd_submit)
    p = sub.add_parser("list", parents=[common], help="list jobs, newest first")
    p.add_argument("--state", choices=["queued", "running", *ENDED])
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(handler=cmd_list)
    for name, handler, text in (("status", cmd_status, "show a job"),
                                ("cancel", cmd_cancel, "cancel a job"),
                                ("summary", cmd_summary, "show a job's model summary")):
        p = sub.add_parser(name, parents=[common], help=text)
        p.add_argument("id")
        p.set_defaults(handler=handler)
    p = sub.add_parser("logs", parents=[common], help="print a job's metric rows")
    p.add_argument("id")
    p.add_argument("--kind", choices=["epoch", "batch"], default=None,
                   help="rows to print (default: epoch; with --follow, progress bars and "
                        "epoch lines as Keras prints them)")
    p.add_argument("--follow", "-f", action="store_true",
                   help="keep printing until the job ends; exit status 0 if it succeeded, "
                        "3 if it failed or was cancelled")
    p.set_defaults(handler=cmd_logs)
    p = sub.add_parser("download", parents=[common], help="download a job's trained .keras file")
    p.add_argument("id")
    p.add_argument("-o", "--output-path", dest="path", default=None, help="default: ID.keras")
    p.set_defaults(handler=cmd_download)


# -- server-side commands (their code is imported only here) --------------------------


def _settings():
    from service.core.config import get_settings
    from service.core.logs import configure_from

    settings = get_settings()
    configure_from(settings)  # FITFLEET_LOG_FORMAT: text or JSON lines
    return settings


@server_command
def cmd_api(args) -> int:
    from service.web.server import serve

    serve(_settings(), args.host, args.port, args.workers)
    return EXIT_OK


@server_command
def cmd_worker(args) -> int:
    from workers.main import run_worker

    queues = [q.strip() for q in args.queues.split(",") if q.strip()]
    if not queues:
        raise UsageError("--queues names no queue")
    settings = _settings()
    warn_if_database_down(settings)
    warn_if_broker_down(settings)
    status = run_worker(settings, queues=queues, concurrency=args.concurrency,
                        hostname=args.hostname)
    return status if isinstance(status, int) else EXIT_OK


@server_command
def cmd_reaper(args) -> int:
    from service.ops.reaper import run

    settings = _settings()
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
    report = retention.run(_settings(), metrics_age_hours=args.metrics_age_hours,
                           max_points=args.points, dry_run=args.dry_run)
    _print_json(report.as_dict())
    return EXIT_OK


@server_command
def cmd_db(args) -> int:
    from service.store import migrate

    settings = _settings()
    if args.action == "upgrade":
        migrate.upgrade(settings.database_url)
    print(migrate.current(settings.database_url) or "empty")
    return EXIT_OK


def cmd_demo(args) -> int:
    from fitfleet import demo

    return demo.run(args.home, args.port, args.example, args.keep)


# -- client commands ------------------------------------------------------------------


def _client(args) -> Client:
    client = Client(args.api, token=args.token)
    if client.token is None:
        client.token = saved_token(client.url)
    return client


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2, default=str))


def _job_exit(job: dict) -> int:
    return EXIT_JOB if job["state"] in ("failed", "cancelled") else EXIT_OK


def cmd_submit(args) -> int:
    from fitfleet.demo import fill_examples

    spec = _read_spec(args.spec)
    if args.spec != "-":
        spec = fill_examples(spec, Path(args.spec).resolve().parent)
    run = _client(args).submit(spec)
    if args.output == "json" and not args.follow:
        _print_json(run.job)
        return EXIT_OK
    print(run.id, flush=True)
    if not args.follow:
        return EXIT_OK
    job = run.wait(verbose=1 if args.output == "text" else 0)
    if args.output == "json":
        _print_json(job)
    return _job_exit(job)


def _read_spec(path: str) -> dict:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    try:
        spec = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(spec, dict):
        raise UsageError(f"{path} must hold a JSON object (a job spec)")
    return spec


def cmd_list(args) -> int:
    jobs = _client(args).jobs(state=args.state, limit=args.limit)
    if args.output == "json":
        _print_json({"jobs": jobs})
        return EXIT_OK
    rows = [("ID", "NAME", "STATE", "PROGRESS", "ATTEMPTS", "CREATED")]
    rows += [(j["id"], j.get("name") or "", j["state"], format_progress(j),
              f"{j.get('attempts', 0)}/{j.get('max_attempts', '?')}",
              (j.get("created_at") or "")[:19]) for j in jobs]
    print(format_table(rows))
    return EXIT_OK


def cmd_status(args) -> int:
    job = _client(args).get(args.id)
    if args.output == "json":
        _print_json(job)
        return _job_exit(job)
    cp = job.get("latest_checkpoint")
    lines = [("id", job["id"]), ("name", job.get("name")), ("state", job["state"]),
             ("progress", format_progress(job)),
             ("attempts", f"{job.get('attempts', 0)}/{job.get('max_attempts', '?')}"),
             ("created", job.get("created_at")), ("started", job.get("started_at")),
             ("finished", job.get("finished_at")),
             ("checkpoint", _checkpoint_place(cp, job) if cp else None)]
    if job.get("error"):
        lines.append(("error", f"{job['error']['code']}: {job['error']['message']}"))
    for key, value in lines:
        if value is not None:
            print(f"{key + ':':<12}{value}")
    return _job_exit(job)


def _checkpoint_place(cp: dict, job: dict) -> str:
    p = job.get("progress") or {}
    return position(cp["step"], p.get("steps_per_epoch"), p.get("epochs"))


def cmd_cancel(args) -> int:
    job = _client(args).cancel(args.id)
    if args.output == "json":
        _print_json(job)
    elif job["state"] == "cancelled":
        print(f"{job['id']} cancelled")
    else:
        print(f"{job['id']} {job['state']}: cancel requested; the worker stops at its next batch")
    return EXIT_OK


def cmd_logs(args) -> int:
    client = _client(args)
    if args.follow and args.output == "text":
        return _follow(client, args)
    args.kind = args.kind or "epoch"
    job, after = client.get(args.id), None
    while True:
        if args.follow:
            job = client.get(args.id)
        while True:
            page = client.metrics(args.id, kind=args.kind, after=after)
            for row in page["rows"]:
                _print_row(row, job, args)
            if not page["rows"]:
                break
            after = page["next"]
        if not args.follow:
            return EXIT_OK
        if job["state"] in ENDED:
            return _job_exit(job)
        time.sleep(1.0)


def _follow(client: Client, args) -> int:
    """Keras-like progress until the job ends: a bar per epoch, epoch lines, attempt notes.

    Rows come through the metrics cursor, so a worker that dies and an attempt that
    resumes from a checkpoint replay no line: the resumed attempt rewrites the same steps.
    """
    run = client.job(args.id)
    job = run.wait(verbose=2 if args.kind == "epoch" else 1, bar=True)
    return _job_exit(job)


def _print_row(row: dict, job: dict, args) -> None:
    if args.output == "json":
        print(json.dumps(row, default=str), flush=True)
        return
    p = job.get("progress") or {}
    text = f"Epoch {(row.get('epoch') or 0) + 1}/{p.get('epochs') or '?'}"
    if args.kind == "batch":
        text += f" {(row.get('batch') or 0) + 1}/{p.get('steps_per_epoch') or '?'}"
    print(f"{text} - {format_logs(row.get('logs'))}", flush=True)


def cmd_download(args) -> int:
    path = _client(args).download(args.id, args.path or f"{args.id}.keras")
    if args.output == "json":
        _print_json({"id": args.id, "path": str(path), "bytes": path.stat().st_size})
    else:
        print(path)
    return EXIT_OK


def cmd_summary(args) -> int:
    summary = _client(args).summary(args.id)
    if args.output == "json":
        _print_json(summary)
    else:
        print(format_summary(summary))
    return EXIT_OK
