"""The commands that talk to the API: submit, list, status, cancel, logs, download, summary."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from fitfleet.cli_checks import saved_token
from fitfleet.cli_common import EXIT_JOB, EXIT_OK, UsageError, print_json
from fitfleet.client import ENDED, Client
from fitfleet.formatting import format_logs, format_progress, format_summary, format_table, position


def add_job_commands(sub) -> None:
    """Add the commands that talk to the API to an argparse subparsers object."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--api", default=None, help="API URL (default: $FITFLEET_API_URL)")
    common.add_argument("--token", default=None, help="API token (default: $FITFLEET_TOKEN)")
    common.add_argument("--output", choices=["text", "json"], default="text")
    p = sub.add_parser(
        "submit", parents=[common], help="submit a job spec (JSON file, - for stdin)"
    )
    p.add_argument("spec")
    p.add_argument("--follow", action="store_true", help="show progress until the job ends")
    p.set_defaults(handler=cmd_submit)
    p = sub.add_parser("list", parents=[common], help="list jobs, newest first")
    p.add_argument("--state", choices=["queued", "running", *ENDED])
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(handler=cmd_list)
    for name, handler, text in (
        ("status", cmd_status, "show a job"),
        ("cancel", cmd_cancel, "cancel a job"),
        ("summary", cmd_summary, "show a job's model summary"),
    ):
        p = sub.add_parser(name, parents=[common], help=text)
        p.add_argument("id")
        p.set_defaults(handler=handler)
    p = sub.add_parser("logs", parents=[common], help="print a job's metric rows")
    p.add_argument("id")
    p.add_argument(
        "--kind",
        choices=["epoch", "batch", "system"],
        default=None,
        help="rows to print (default: epoch; system: the CPU, memory and GPU samples; "
        "with --follow, progress bars and epoch lines as Keras prints them)",
    )
    p.add_argument(
        "--follow",
        "-f",
        action="store_true",
        help="keep printing until the job ends; exit status 0 if it succeeded, "
        "3 if it failed or was cancelled",
    )
    p.set_defaults(handler=cmd_logs)
    p = sub.add_parser("download", parents=[common], help="download a job's trained .keras file")
    p.add_argument("id")
    p.add_argument("-o", "--output-path", dest="path", default=None, help="default: ID.keras")
    p.set_defaults(handler=cmd_download)
    from fitfleet.cli_events import add_event_commands

    add_event_commands(sub, common)


def _client(args) -> Client:
    client = Client(args.api, token=args.token)
    if client.token is None:
        client.token = saved_token(client.url)
    return client


def _job_exit(job: dict) -> int:
    return EXIT_JOB if job["state"] in ("failed", "cancelled") else EXIT_OK


def cmd_submit(args) -> int:
    from fitfleet.demo import fill_examples

    spec = _read_spec(args.spec)
    if args.spec != "-":
        spec = fill_examples(spec, Path(args.spec).resolve().parent)
    run = _client(args).submit(spec)
    if args.output == "json" and not args.follow:
        print_json(run.job)
        return EXIT_OK
    print(run.id, flush=True)
    if not args.follow:
        return EXIT_OK
    job = run.wait(verbose=1 if args.output == "text" else 0)
    if args.output == "json":
        print_json(job)
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
        print_json({"jobs": jobs})
        return EXIT_OK
    rows = [("ID", "NAME", "STATE", "PROGRESS", "ATTEMPTS", "CREATED")]
    rows += [
        (
            j["id"],
            j.get("name") or "",
            j["state"],
            format_progress(j),
            f"{j.get('attempts', 0)}/{j.get('max_attempts', '?')}",
            (j.get("created_at") or "")[:19],
        )
        for j in jobs
    ]
    print(format_table(rows))
    return EXIT_OK


def cmd_status(args) -> int:
    job = _client(args).get(args.id)
    if args.output == "json":
        print_json(job)
        return _job_exit(job)
    cp = job.get("latest_checkpoint")
    lines = [
        ("id", job["id"]),
        ("name", job.get("name")),
        ("state", job["state"]),
        ("waiting", job.get("waiting")),
        (
            "preempting",
            "giving way to a job of higher priority (checkpointing now)"
            if job.get("preempt_requested") and job["state"] == "running"
            else None,
        ),
        ("progress", format_progress(job)),
        ("attempts", f"{job.get('attempts', 0)}/{job.get('max_attempts', '?')}"),
        ("preempted", _times(job.get("preemptions"))),
        ("created", job.get("created_at")),
        ("started", job.get("started_at")),
        ("finished", job.get("finished_at")),
        ("checkpoint", _checkpoint_place(cp, job) if cp else None),
    ]
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
        print_json(job)
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
        print_json({"id": args.id, "path": str(path), "bytes": path.stat().st_size})
    else:
        print(path)
    return EXIT_OK


def cmd_summary(args) -> int:
    summary = _client(args).summary(args.id)
    if args.output == "json":
        print_json(summary)
    else:
        print(format_summary(summary))
    return EXIT_OK


def _times(n: int | None) -> str | None:
    return None if not n else f"{n} time" + ("" if n == 1 else "s")
