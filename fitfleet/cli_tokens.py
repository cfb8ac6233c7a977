"""``fitfleet token create|list|revoke``: API tokens, managed straight in the database.

These are operator commands: they read ``DATABASE_URL`` like the API does, so they need
no running API and no token of their own. A token's secret is printed once, at creation.
"""

from __future__ import annotations

import json
import sys

from fitfleet.cli_checks import database_failure
from fitfleet.cli_common import EXIT_FAIL, EXIT_OK, EXIT_USAGE


def add_token_commands(sub) -> None:
    """Add the ``token`` command and its actions to an argparse subparsers object."""
    p = sub.add_parser("token", help="create, list and revoke API tokens (uses DATABASE_URL)")
    actions = p.add_subparsers(dest="token_action", metavar="ACTION", required=True)
    out = {"choices": ["text", "json"], "default": "text"}
    c = actions.add_parser("create", help="create a token; its secret is shown only now")
    c.add_argument("--project", required=True, help="the project the token acts for")
    c.add_argument("--admin", action="store_true", help="may see every project's jobs")
    c.add_argument("--name", default="", help="a label for listings")
    c.add_argument("--output", **out)
    c.set_defaults(handler=cmd_token_create)
    ls = actions.add_parser("list", help="list tokens (never their secrets)")
    ls.add_argument("--project", default=None, help="only this project's tokens")
    ls.add_argument("--output", **out)
    ls.set_defaults(handler=cmd_token_list)
    r = actions.add_parser("revoke", help="revoke a token by id; it stops working at once")
    r.add_argument("id", type=int)
    r.add_argument("--output", **out)
    r.set_defaults(handler=cmd_token_revoke)


def _store():
    from service.core.config import get_settings
    from service.store.tokens import TokenStore

    return TokenStore(get_settings().database_url)


def _guarded(fn):
    """Turn the project's errors into a message and an exit status."""

    def run(args) -> int:
        from service.core.errors import FitfleetError

        try:
            return fn(args)
        except Exception as exc:
            text = database_failure(exc)  # the database did not answer, or has no tables yet
            if text is not None:
                print(f"error: {text}", file=sys.stderr)
                return EXIT_FAIL
            if not isinstance(exc, FitfleetError):
                raise
            print(f"error: {exc.code}: {exc.message}", file=sys.stderr)
            return EXIT_USAGE if exc.status == 400 else EXIT_FAIL

    run.__doc__ = fn.__doc__
    return run


@_guarded
def cmd_token_create(args) -> int:
    """Create a token and print its secret (stdout) once."""
    record, secret = _store().create(args.project, name=args.name, admin=args.admin)
    if args.output == "json":
        print(json.dumps({**record, "token": secret}, indent=2))
        return EXIT_OK
    print(secret)
    kind = "admin token" if record["admin"] else "token"
    print(
        f"created {kind} {record['id']} for project {record['project']!r}; this is the only "
        "time its secret is shown (send it as 'Authorization: Bearer <token>' or set "
        "FITFLEET_TOKEN)",
        file=sys.stderr,
    )
    return EXIT_OK


@_guarded
def cmd_token_list(args) -> int:
    """Print the tokens, oldest first."""
    tokens = _store().list(project=args.project)
    if args.output == "json":
        print(json.dumps({"tokens": tokens}, indent=2))
        return EXIT_OK
    from fitfleet.formatting import format_table

    rows = [("ID", "PROJECT", "NAME", "PREFIX", "ADMIN", "CREATED", "LAST USED", "REVOKED")]
    rows += [
        (
            str(t["id"]),
            t["project"],
            t["name"],
            t["prefix"] + "...",
            "yes" if t["admin"] else "no",
            (t["created_at"] or "")[:19],
            (t["last_used_at"] or "-")[:19],
            (t["revoked_at"] or "-")[:19],
        )
        for t in tokens
    ]
    print(format_table(rows))
    return EXIT_OK


@_guarded
def cmd_token_revoke(args) -> int:
    """Revoke one token."""
    record = _store().revoke(args.id)
    if args.output == "json":
        print(json.dumps(record, indent=2))
    else:
        print(f"token {record['id']} ({record['project']}) revoked at {record['revoked_at']}")
    return EXIT_OK
