"""A worker's side of a multi-worker job: join its gang, wait for it to fill, train.

The job's messages reach N workers: each join that leaves the gang short sends one more
message, for the next member, so a forming gang always has one message out and a full
one none (a member that gives itself back leaves that message to the next worker;
duplicates are harmless: a full gang refuses a join).
Once the gang is full, this process trains its share in a fresh child process
(:mod:`workers.training.member`), which dies with this one; SIGTERM is passed on to it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from service.core.config import Settings
from service.core.dispatch import enqueue
from service.core.errors import LeaseLost
from service.store.gangs import GangStore, Membership, gang_size
from service.store.jobs import JobStore
from workers.presence import process_name
from workers.training.lease import Heartbeat
from workers.training.multiworker import tf_config

log = logging.getLogger("fitfleet.worker")


def announce(settings: Settings) -> str:
    """``host:port`` this worker's peers reach it at: FITFLEET_WORKER_HOST (default: the
    host name) and the first free port of FITFLEET_WORKER_PORTS."""
    host = settings.worker_host or socket.gethostname()
    first, _, last = settings.worker_ports.partition("-")
    for port in range(int(first), int(last or first) + 1):
        with socket.socket() as probe:
            try:
                probe.bind(("", port))
            except OSError:
                continue
        return f"{host}:{port}"
    raise RuntimeError(f"no free port in FITFLEET_WORKER_PORTS={settings.worker_ports}")


def run(job_id: str, spec: dict, settings: Settings, preempted: threading.Event) -> str:
    """Join the job's gang and train this member's share; returns the outcome."""
    gangs = GangStore(settings.database_url)
    member = gangs.join(job_id, process_name(), announce(settings), settings.lease_seconds)
    if member is None:
        log.info("job %s: no place in its gang (running, full or ended); skipping", job_id)
        return "skipped"
    log.info("job %s: joined its gang as rank %d of %d", job_id, member.rank, member.size)
    if not member.filled:
        _send(settings, job_id, spec)  # for the next member
    formed = _wait(gangs, member, settings, preempted)
    if formed is None:
        if gangs.leave(member):
            log.info(
                "job %s: gang not full after %.0fs; giving this worker back",
                job_id,
                settings.gang_form_seconds,
            )
            return "released"
        formed = gangs.formed(member)
    return _train(gangs, member, formed, settings, preempted)


def _wait(gangs: GangStore, member: Membership, settings: Settings, preempted):
    deadline = time.monotonic() + settings.gang_form_seconds
    while time.monotonic() < deadline and not preempted.is_set():
        try:
            formed = gangs.formed(member)
        except LeaseLost:
            return None
        if formed is not None:
            return formed
        time.sleep(0.2)
    return None


def _train(gangs: GangStore, member: Membership, formed, settings, preempted) -> str:
    env = dict(os.environ)
    env["TF_CONFIG"] = tf_config(formed.addresses, formed.rank)
    env["FITFLEET_GANG_MEMBER"] = json.dumps(
        {
            "parent": os.getpid(),
            "job_id": member.job_id,
            "gang_id": member.gang_id,
            "rank": member.rank,
            "size": member.size,
        }
    )
    log.info(
        "job %s: gang formed at %s; rank %d starts", member.job_id, formed.addresses, member.rank
    )
    claim = formed.claim
    renewer = JobStore(settings.database_url) if formed.rank == 0 else gangs
    heartbeat = _StandIn(  # while the child starts, and beside its own heartbeat
        renewer,
        claim.job_id,
        claim.attempt_id,
        None,
        settings.lease_seconds,
        settings.heartbeat_seconds,
    ).start()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "workers.training.member"], env=env)
        outcome = _wait_child(proc, preempted)
    finally:
        heartbeat.stop()
    log.info("job %s rank %d: member process ended (%s)", member.job_id, member.rank, outcome)
    if outcome == "died":
        job = gangs.break_gang(
            member.gang_id, "gang_member_lost", f"member {member.rank}'s process died"
        )
        if job is not None:
            _send(settings, job["id"], {"queue": job["queue"], "priority": job["priority"]})
    return outcome


class _StandIn(Heartbeat):
    """Renews the member's lease from this process; the child reports what it learns."""

    def beat(self) -> None:
        try:
            self.jobs.renew(self.job_id, self.attempt_id, self.lease_seconds)
        except LeaseLost:
            self.lost.set()  # the job ended or moved on: the child says how
        except Exception as exc:  # noqa: BLE001 - database briefly away: retry
            log.debug("job %s: lease renewal failed (%s); retrying", self.job_id, exc)


def _wait_child(proc: subprocess.Popen, preempted: threading.Event) -> str:
    termed = False
    while proc.poll() is None:
        if preempted.is_set() and not termed:
            proc.send_signal(signal.SIGTERM)
            termed = True
        time.sleep(0.2)
    return {0: "done", 3: "lost"}.get(proc.returncode, "died")


def _send(settings: Settings, job_id: str, spec: dict) -> None:
    enqueue(
        settings.broker_url,
        settings.home,
        job_id,
        spec.get("queue", "default"),
        int(spec.get("priority", 0)),
    )


def is_gang_job(spec: dict) -> bool:
    """Whether ``spec`` asks for more than one worker."""
    return gang_size(spec) > 1
