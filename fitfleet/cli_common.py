"""What every ``fitfleet`` command shares: its exit statuses, the usage error, JSON output."""

from __future__ import annotations

import json

EXIT_OK = 0
EXIT_FAIL = 1  # the API answered an error or could not be reached; a server command failed
EXIT_USAGE = 2
EXIT_JOB = 3  # the job failed or was cancelled
EXIT_PIPE = 141  # the output was closed (| head)


class UsageError(Exception):
    """A command line that cannot be acted on (exit status 2)."""


def print_json(obj) -> None:
    """Print ``obj`` as indented JSON (dates and the like as strings)."""
    print(json.dumps(obj, indent=2, default=str))
