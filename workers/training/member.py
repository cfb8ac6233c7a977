"""The child process of one gang member: ``python -m workers.training.member``.

The worker process that joined the gang starts it with ``TF_CONFIG`` and
``FITFLEET_GANG_MEMBER`` (the job, the gang, this member's rank and its attempt) in the
environment. It creates MultiWorkerMirroredStrategy before anything else starts
TensorFlow, trains its share of the attempt and exits 0 for any outcome it recorded
itself, 3 when its gang broke. SIGTERM asks it to stop as a single worker would.
"""

from __future__ import annotations

import faulthandler
import json
import logging
import os
import signal
import sys
import threading

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """A SIGKILL for this process when the worker that started it dies (Linux's
    PR_SET_PDEATHSIG); exits at once if that worker is already gone."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass
    if os.getppid() != parent:
        sys.exit(3)


def main() -> int:
    info = json.loads(os.environ["FITFLEET_GANG_MEMBER"])
    die_with_parent(int(info["parent"]))
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # where is it: kill -USR1
    from service.core import logs
    from service.core.config import get_settings

    settings = get_settings()
    logs.configure_from(settings)
    from workers.training import multiworker

    made = multiworker.strategy(settings.collective_timeout)  # before any other TF op
    from service.store.gangs import GangStore, Membership

    formed = GangStore(settings.database_url).formed(
        Membership(info["job_id"], info["gang_id"], info["rank"], info["size"], False)
    )
    asked = threading.Event()  # the members agree on the step at which they stop
    signal.signal(signal.SIGTERM, lambda signum, frame: asked.set())
    with logs.bound(formed.claim.job_id, formed.claim.number):
        outcome = multiworker.MemberAttempt(
            formed.claim,
            settings,
            asked,
            gang_id=formed.gang_id,
            rank=formed.rank,
            size=info["size"],
            made=made,
        ).run()
    if formed.rank == 0 and outcome != "lost":
        _wait_for_members(formed.gang_id, settings)
    return 3 if outcome == "lost" else 0


def _wait_for_members(gang_id: int, settings) -> None:
    """The chief's collective service outlives the members' last steps: leave after them."""
    import time

    from service.store.gangs import GangStore

    gangs = GangStore(settings.database_url)
    deadline = time.monotonic() + settings.collective_timeout
    while gangs.running_members(gang_id) and time.monotonic() < deadline:
        time.sleep(0.2)


if __name__ == "__main__":
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything is recorded: skip the interpreter's teardown, in which TensorFlow's
    # collective runtime can take seconds or abort once its peers are gone.
    os._exit(code)
