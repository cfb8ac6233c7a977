"""``fitfleet project set|list``: projects' fair-share weights and quotas, in the database.

Operator commands like ``fitfleet token``: they read ``DATABASE_URL``, so they need no
running API and no token (over the API, an admin token does the same with
``PUT /api/v1/projects/{name}``). A project with no settings has weight 1 and no limits.
"""

from __future__ import annotations

import argparse
import json

from fitfleet.cli_common import EXIT_OK
from fitfleet.cli_tokens import _guarded


def _limit(raw: str) -> int | None:
    """A quota on the command line: a whole number, or ``none`` for no limit."""
    if raw.strip().lower() in ("none", "null", "unlimited"):
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0 or 'none', got {raw!r}")
    return value


def _weight(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {raw!r}")
    return value


def add_project_commands(sub) -> None:
    """Add the ``project`` command and its actions to an argparse subparsers object."""
    p = sub.add_parser(
        "project", help="set and list projects' fair-share weights and quotas (uses DATABASE_URL)"
    )
    actions = p.add_subparsers(dest="project_action", metavar="ACTION", required=True)
    out = {"choices": ["text", "json"], "default": "text"}
    s = actions.add_parser(
        "set", help="set a project's weight and quotas; options not given keep their value"
    )
    s.add_argument("name", help="the project (as its tokens name it)")
    s.add_argument("--weight", type=_weight, help="fair-share weight (default 1)")
    s.add_argument(
        "--max-running",
        type=_limit,
        default=argparse.SUPPRESS,
        help="most jobs running at once ('none': no limit)",
    )
    s.add_argument(
        "--max-gpus",
        type=_limit,
        default=argparse.SUPPRESS,
        help="most GPUs in use at once ('none': no limit)",
    )
    s.add_argument("--output", **out)
    s.set_defaults(handler=cmd_project_set)
    ls = actions.add_parser("list", help="projects with their weight, quotas and running share")
    ls.add_argument("--output", **out)
    ls.set_defaults(handler=cmd_project_list)


def _store():
    from service.core.config import get_settings
    from service.store.projects import ProjectStore

    return ProjectStore(get_settings().database_url)


def _quota(value) -> str:
    return "-" if value is None else str(value)


@_guarded
def cmd_project_set(args) -> int:
    """Create or change a project's settings and print them."""
    changes = {k: getattr(args, k) for k in ("max_running", "max_gpus") if hasattr(args, k)}
    if args.weight is not None:
        changes["weight"] = args.weight
    project = _store().set(args.name, **changes)
    if args.output == "json":
        print(json.dumps(project, indent=2))
        return EXIT_OK
    print(
        f"project {project['name']}: weight {project['weight']:g}, max running "
        f"{_quota(project['max_running'])}, max GPUs {_quota(project['max_gpus'])}"
    )
    return EXIT_OK


@_guarded
def cmd_project_list(args) -> int:
    """Print every project with settings or active jobs, by name."""
    projects = _store().list()
    if args.output == "json":
        print(json.dumps({"projects": projects}, indent=2))
        return EXIT_OK
    from fitfleet.formatting import format_table

    rows = [("PROJECT", "WEIGHT", "MAX RUNNING", "MAX GPUS", "RUNNING", "QUEUED", "GPUS", "SHARE")]
    rows += [
        (
            p["name"],
            f"{p['weight']:g}",
            _quota(p["max_running"]),
            _quota(p["max_gpus"]),
            str(p["running"]),
            str(p["queued"]),
            str(p["gpus"]),
            f"{100 * p['share']:.0f}% (weight {100 * p['weight_share']:.0f}%)",
        )
        for p in projects
    ]
    print(format_table(rows))
    return EXIT_OK
