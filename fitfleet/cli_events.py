"""The commands that tell what happened to a job: its event timeline and its workers' log lines.

``fitfleet events ID`` prints the timeline (claimed, restored, checkpoints, lease lost,
preempted, finished, ...); ``fitfleet worker-logs ID`` the warnings and errors the job's
workers logged, Keras's and TensorFlow's own messages of a failure included. ``fitfleet
logs`` keeps meaning the metric rows. With ``--follow`` both keep printing until the job
ends.
"""

from __future__ import annotations

import argparse
import json
import time

from fitfleet.cli_jobs import _client, _job_exit
from fitfleet.client import ENDED

POLL_SECONDS = 1.0
SHOWN = {  # the data fields a line shows, per event type, in this order
    "submitted": ("name", "queue", "priority", "max_attempts"),
    "queued": ("reason",),
    "claimed": ("worker", "host", "gpus"),
    "restored": ("step", "bytes", "fetch_seconds", "load_seconds"),
    "checkpoint_skipped": ("step", "reason"),
    "first_batch": ("step", "seconds"),
    "checkpoint": ("step", "bytes", "blocked_seconds", "background_seconds"),
    "validated": ("epoch", "seconds"),
    "lease_lost": ("code", "message"),
    "preempted": ("reason",),
    "released": ("step",),
    "requeued": ("after",),
    "cancelled": ("while",),
    "finished": ("state", "error_code", "error_message"),
}


def add_event_commands(sub, common: argparse.ArgumentParser) -> None:
    """Add ``events`` and ``worker-logs`` to an argparse subparsers object."""
    follow = {
        "action": "store_true",
        "help": "keep printing until the job ends; exit status 0 if it succeeded, "
        "3 if it failed or was cancelled",
    }
    p = sub.add_parser("events", parents=[common], help="print a job's event timeline")
    p.add_argument("id")
    p.add_argument("--follow", "-f", **follow)
    p.set_defaults(handler=cmd_events)
    p = sub.add_parser(
        "worker-logs",
        parents=[common],
        help="print the warnings and errors a job's workers logged",
    )
    p.add_argument("id")
    p.add_argument("--attempt", type=int, default=None, help="only this attempt's lines")
    p.add_argument("--follow", "-f", **follow)
    p.set_defaults(handler=cmd_worker_logs)


def cmd_events(args) -> int:
    client = _client(args)
    return _pages(
        client,
        args,
        lambda after: client.events(args.id, after=after),
        "events",
        format_event,
    )


def cmd_worker_logs(args) -> int:
    client = _client(args)
    return _pages(
        client,
        args,
        lambda after: client.worker_logs(args.id, attempt=args.attempt, after=after),
        "lines",
        format_line,
    )


def _pages(client, args, fetch, key: str, fmt) -> int:
    """Print every page after the cursor; with --follow, poll until the job has ended."""
    after = None
    while True:
        job = client.get(args.id) if args.follow else None
        while True:
            page = fetch(after)
            for item in page[key]:
                print(json.dumps(item) if args.output == "json" else fmt(item), flush=True)
            if not page[key]:
                break
            after = page["next"]
        if not args.follow:
            return 0
        if job["state"] in ENDED:  # read once more after the end: nothing comes later
            return _job_exit(job)
        time.sleep(POLL_SECONDS)


def format_event(e: dict) -> str:
    """One line: time, attempt, type and the fields that matter for that type."""
    data = e.get("data") or {}
    names = SHOWN.get(e["type"], tuple(data))
    fields = " ".join(f"{k}={_value(data[k])}" for k in names if data.get(k) is not None)
    who = f"attempt {e['attempt']}" if e.get("attempt") else "-"
    return f"{e['at']}  {who:<10} {e['type']:<18} {fields}".rstrip()


def format_line(line: dict) -> str:
    return (
        f"{line['at']}  attempt {line['attempt']}  {line['level']} {line['logger']}: "
        + line["message"]
    )


def _value(v) -> str:
    text = str(v)
    return json.dumps(text) if " " in text else text
