"""``fitfleet webhook``: register, list and delete a project's webhooks, and read a hook's
delivery log (admin tokens; see docs/WEBHOOKS.md for checking signatures)."""

from __future__ import annotations

import argparse

from fitfleet.cli_common import EXIT_OK, print_json
from fitfleet.formatting import format_table
from fitfleet.transport import open_url, read_json

KINDS = ("state", "preempted", "resumed", "best_checkpoint")


def add_webhook_commands(sub) -> None:
    """Add ``webhook add|list|delete|deliveries`` to an argparse subparsers object."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--api", default=None, help="API URL (default: $FITFLEET_API_URL)")
    common.add_argument("--token", default=None, help="admin token (default: $FITFLEET_TOKEN)")
    common.add_argument("--output", choices=["text", "json"], default="text")
    hook = sub.add_parser("webhook", help="a project's webhooks (admin token)")
    verbs = hook.add_subparsers(dest="verb", metavar="VERB", required=True)
    p = verbs.add_parser("add", parents=[common], help="register a URL for a project's events")
    p.add_argument("url")
    p.add_argument(
        "--events",
        required=True,
        help=f"comma-separated, of: {', '.join(KINDS)}",
    )
    p.add_argument("--project", default=None, help="default: the token's project")
    p.set_defaults(handler=cmd_add)
    p = verbs.add_parser("list", parents=[common], help="list webhooks")
    p.add_argument("--project", default=None)
    p.set_defaults(handler=cmd_list)
    p = verbs.add_parser("delete", parents=[common], help="delete a webhook and its log")
    p.add_argument("id", type=int)
    p.set_defaults(handler=cmd_delete)
    p = verbs.add_parser("deliveries", parents=[common], help="a webhook's delivery log")
    p.add_argument("id", type=int)
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(handler=cmd_deliveries)


def _call(args, method: str, path: str, body=None, query=None) -> dict:
    from fitfleet.cli_jobs import _client

    client = _client(args)
    with open_url(
        client.url, method, "/api/v1" + path, client.token, client.timeout, body, query
    ) as resp:
        return read_json(resp, client.url)


def cmd_add(args) -> int:
    body = {"url": args.url, "events": [e.strip() for e in args.events.split(",") if e.strip()]}
    if args.project:
        body["project"] = args.project
    hook = _call(args, "POST", "/webhooks", body)
    if args.output == "json":
        print_json(hook)
        return EXIT_OK
    print(f"webhook {hook['id']} of project {hook['project']}: {hook['url']}")
    print(f"events: {', '.join(hook['events'])}")
    print(f"secret: {hook['secret']}")
    print("keep the secret: it signs every delivery and is not shown again")
    return EXIT_OK


def cmd_list(args) -> int:
    hooks = _call(args, "GET", "/webhooks", query={"project": args.project})["webhooks"]
    if args.output == "json":
        print_json({"webhooks": hooks})
        return EXIT_OK
    rows = [("ID", "PROJECT", "EVENTS", "URL", "CREATED")]
    rows += [
        (h["id"], h["project"], ",".join(h["events"]), h["url"], h["created_at"][:19])
        for h in hooks
    ]
    print(format_table(rows))
    return EXIT_OK


def cmd_delete(args) -> int:
    from fitfleet.cli_jobs import _client

    client = _client(args)
    with open_url(
        client.url, "DELETE", f"/api/v1/webhooks/{args.id}", client.token, client.timeout
    ):
        pass
    if args.output == "json":
        print_json({"id": args.id, "deleted": True})
    else:
        print(f"webhook {args.id} deleted")
    return EXIT_OK


def cmd_deliveries(args) -> int:
    got = _call(args, "GET", f"/webhooks/{args.id}/deliveries", query={"limit": args.limit})
    if args.output == "json":
        print_json(got)
        return EXIT_OK
    rows = [("ID", "EVENT", "TYPE", "JOB", "STATE", "TRIES", "LAST", "ERROR")]
    rows += [
        (
            d["id"],
            d["event_id"],
            d["type"],
            d["job_id"],
            d["state"],
            d["attempts"],
            d["last_status"] or "",
            d["last_error"] or "",
        )
        for d in got["deliveries"]
    ]
    print(format_table(rows))
    return EXIT_OK
