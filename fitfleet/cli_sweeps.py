"""The sweep commands: ``fitfleet sweep SPEC``, ``sweep status ID`` (a live table of the
trials), ``sweep best ID`` (download the best trial's model), ``sweep list``, ``sweep cancel``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from fitfleet.cli_common import EXIT_JOB, EXIT_OK, UsageError, print_json
from fitfleet.cli_jobs import _client, _read_spec
from fitfleet.formatting import format_table
from fitfleet.sweep import SETTLED

ACTIONS = ("status", "best", "list", "cancel")
USAGE = (
    "fitfleet sweep SPEC | sweep status ID [--once] | sweep best ID [-o PATH] | "
    "sweep list | sweep cancel ID"
)


def add_sweep_commands(sub) -> None:
    """Add ``fitfleet sweep ...`` to an argparse subparsers object."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--api", default=None, help="API URL (default: $FITFLEET_API_URL)")
    common.add_argument("--token", default=None, help="API token (default: $FITFLEET_TOKEN)")
    common.add_argument("--output", choices=["text", "json"], default="text")
    p = sub.add_parser(
        "sweep",
        parents=[common],
        help="start a sweep (SPEC: a sweep spec JSON file), or status/best/list/cancel",
        usage=USAGE,
        description="A sweep spec holds a base job spec, a space over paths into it, an "
        "objective, a sampler, a pruner, max_trials and max_parallel (see docs/API.md).",
    )
    p.add_argument("words", nargs="+", metavar="SPEC | status ID | best ID | list | cancel ID")
    p.add_argument("--once", action="store_true", help="status: print the table once")
    p.add_argument("--follow", "-f", action="store_true", help="status: redraw until it ends")
    p.add_argument("--interval", type=float, default=2.0, help="status: seconds between polls")
    p.add_argument("-o", "--output-path", dest="path", default=None, help="best: default ID.keras")
    p.set_defaults(handler=cmd_sweep)


def cmd_sweep(args) -> int:
    first, rest = args.words[0], args.words[1:]
    if first not in ACTIONS:
        if rest:
            raise UsageError(f"usage: {USAGE}")
        return _submit(args, first)
    if first == "list":
        return _list(args)
    if len(rest) != 1:
        raise UsageError(f"usage: fitfleet sweep {first} ID")
    return {"status": _status, "best": _best, "cancel": _cancel}[first](args, rest[0])


def _submit(args, path: str) -> int:
    from fitfleet.demo import fill_examples

    spec = _read_spec(path)
    if path != "-" and isinstance(spec.get("base"), dict):
        spec["base"] = fill_examples(spec["base"], Path(path).resolve().parent)
    sweep = _client(args)._json("POST", "/sweeps", body=spec)
    if args.output == "json":
        print_json(sweep)
    else:
        print(sweep["id"])
    return EXIT_OK


def _status(args, sweep_id: str) -> int:
    client = _client(args)
    live = not args.once and (args.follow or sys.stdout.isatty()) and args.output == "text"
    last = None
    while True:
        sweep = client.get_sweep(sweep_id).last
        if args.output == "json":
            print_json(sweep)
            return EXIT_OK
        table = format_sweep(sweep)
        if table != last:
            if live and sys.stdout.isatty():
                sys.stdout.write("\x1b[H\x1b[2J")
            print(table, flush=True)
            last = table
        if not live or (sweep["state"] in SETTLED and not sweep["trial_counts"]["running"]):
            return EXIT_OK
        time.sleep(args.interval)


def _best(args, sweep_id: str) -> int:
    sweep = _client(args).get_sweep(sweep_id)
    best = sweep.last.get("best")
    if best is None:
        print(f"error: sweep {sweep_id} has no succeeded trial yet", file=sys.stderr)
        return EXIT_JOB
    path = sweep.best_run().download(args.path or f"{sweep_id}.keras")
    if args.output == "json":
        print_json({"id": sweep_id, "trial": best, "path": str(path)})
    else:
        print(f"trial {best['number']}: objective {best['objective']:.6g}")
        print(path)
    return EXIT_OK


def _cancel(args, sweep_id: str) -> int:
    sweep = _client(args)._json("POST", f"/sweeps/{sweep_id}/cancel")
    print_json(sweep) if args.output == "json" else print(f"{sweep_id} {sweep['state']}")
    return EXIT_OK


def _list(args) -> int:
    sweeps = _client(args).sweeps()
    if args.output == "json":
        print_json({"sweeps": sweeps})
        return EXIT_OK
    rows = [("ID", "NAME", "STATE", "TRIALS", "BEST", "CREATED")]
    for s in sweeps:
        done = sum(s["trial_counts"].values())
        best = s["best"]["objective"] if s.get("best") else None
        rows.append(
            (
                s["id"],
                s["name"],
                s["state"],
                f"{done}/{s['max_trials']}",
                "-" if best is None else f"{best:.6g}",
                (s.get("created_at") or "")[:19],
            )
        )
    print(format_table(rows))
    return EXIT_OK


def format_sweep(sweep: dict) -> str:
    """The sweep's header lines and a table of its trials (the best one marked with *)."""
    objective = sweep["objective"]
    counts = ", ".join(f"{n} {state}" for state, n in sweep["trial_counts"].items() if n)
    best = sweep.get("best")
    best_text = (
        f"trial {best['number']}, {objective['metric']} {best['objective']:.6g}"
        if best
        else "none yet"
    )
    trials = (
        f"objective: {objective['direction']} {objective['metric']}; "
        f"trials: {counts or 'none yet'} of {sweep['max_trials']} "
        f"({sweep['max_parallel']} at a time); steps trained: {sweep['steps']}"
    )
    head = [f"sweep {sweep['id']} {sweep['name']}: {sweep['state']}", trials, f"best: {best_text}"]
    paths = list(sweep["space"])
    rows = [("TRIAL", "STATE", objective["metric"].upper(), "STEPS", *map(_short, paths), "JOB")]
    for t in sweep.get("trials", []):
        state = t["state"] + (f"@{t['pruned_epoch']}" if t.get("pruned_epoch") else "")
        mark = "*" if best and best["number"] == t["number"] else ""
        rows.append(
            (
                f"{t['number']}{mark}",
                state,
                "-" if t.get("objective") is None else f"{t['objective']:.6g}",
                t.get("steps") or 0,
                *(_value(t["params"].get(p)) for p in paths),
                t.get("job_id") or "-",
            )
        )
    return "\n".join(head) + "\n" + format_table(rows)


def _short(path: str) -> str:
    """A column name for a path: its last key (``learning_rate``), upper-cased."""
    return path.rsplit(".", 1)[-1].upper()


def _value(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
