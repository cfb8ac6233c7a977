"""``fitfleet export``: a job's metrics written in another tool's format (TensorBoard)."""

from __future__ import annotations

import argparse

from fitfleet.cli_common import EXIT_OK, print_json


def add_export_commands(sub) -> None:
    """Add ``export tensorboard ID DIR`` to an argparse subparsers object."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--api", default=None, help="API URL (default: $FITFLEET_API_URL)")
    common.add_argument("--token", default=None, help="API token (default: $FITFLEET_TOKEN)")
    common.add_argument("--output", choices=["text", "json"], default="text")
    export = sub.add_parser("export", help="write a job's metrics in another tool's format")
    kinds = export.add_subparsers(dest="format", metavar="FORMAT", required=True)
    p = kinds.add_parser(
        "tensorboard",
        parents=[common],
        help="TensorBoard event files: DIR/train and DIR/validation, as Keras's "
        "TensorBoard callback writes them (then: tensorboard --logdir DIR)",
    )
    p.add_argument("id")
    p.add_argument("dir")
    p.set_defaults(handler=cmd_export_tensorboard)


def cmd_export_tensorboard(args) -> int:
    from fitfleet.cli_jobs import _client

    files = _client(args).export_tensorboard(args.id, args.dir)
    if args.output == "json":
        print_json({"id": args.id, "dir": args.dir, "files": [str(f) for f in files]})
    else:
        for f in files:
            print(f)
        print(f"open it with: tensorboard --logdir {args.dir}")
    return EXIT_OK
