"""The fleet: worker processes as they report themselves, and the depth of each queue.

Workers upsert their ``workers`` row every few seconds (see ``workers/presence.py``); a row
whose heartbeat is older than ``stale_after`` seconds and that never said "stopped" is shown
as ``lost``. Queue depths come from the broker itself (:mod:`service.ops.broker`).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import func, select

from service.ops import broker
from service.store.db import get_engine, session_scope
from service.store.tables import Attempt, Job, Worker, utcnow

log = logging.getLogger(__name__)


class FleetStore:
    """Writes from workers about themselves; the fleet view for the API."""

    def __init__(self, database_url: str):
        self.url = database_url

    def report(
        self,
        name: str,
        *,
        hostname: str,
        pid: int,
        queues: list[str],
        state: str,
        job_id: str | None = None,
        gpus: int = 0,
    ) -> None:
        """Insert or update the worker's row with a fresh heartbeat."""
        from service.store.rollups import insert_for

        now = utcnow()
        values = {
            "name": name,
            "hostname": hostname,
            "pid": pid,
            "queues": list(queues),
            "state": state,
            "job_id": job_id,
            "gpus": gpus,
            "heartbeat_at": now,
        }
        insert = insert_for(get_engine(self.url).dialect.name)
        stmt = insert(Worker).values(started_at=now, **values)
        with session_scope(self.url) as s:
            s.execute(
                stmt.on_conflict_do_update(
                    index_elements=[Worker.name],
                    set_={k: getattr(stmt.excluded, k) for k in values if k != "name"},
                )
            )

    def workers(
        self, stale_after: float, include_stopped: bool = True, project: str | None = None
    ) -> list[dict]:
        """Every worker, newest heartbeat first, with its job's last lease renewal.

        With ``project``, a job of another project is not named (the worker shows busy).
        """
        now = utcnow()
        with session_scope(self.url) as s:
            rows = s.execute(
                select(Worker, Job.state, Job.project, Attempt.heartbeat_at)
                .outerjoin(Job, Job.id == Worker.job_id)
                .outerjoin(
                    Attempt,
                    (Attempt.id == Job.current_attempt_id) & (Attempt.worker == Worker.name),
                )
                .order_by(Worker.heartbeat_at.desc())
            ).all()
        out = []
        for w, job_state, job_project, renewed in rows:
            state = w.state
            shown = state == "busy" and (project is None or job_project == project)
            if state != "stopped" and now - w.heartbeat_at > timedelta(seconds=stale_after):
                state = "lost"
            if state == "stopped" and not include_stopped:
                continue
            out.append(
                {
                    "name": w.name,
                    "hostname": w.hostname,
                    "pid": w.pid,
                    "queues": w.queues,
                    "state": state,
                    "job_id": w.job_id if shown else None,
                    "job_state": job_state if shown else None,
                    "gpus": w.gpus,
                    "started_at": w.started_at.isoformat(),
                    "heartbeat_at": w.heartbeat_at.isoformat(),
                    "lease_renewed_at": renewed.isoformat() if renewed and shown else None,
                }
            )
        return out

    def job_counts(self) -> dict[str, dict[str, int]]:
        """Per queue, how many jobs are queued and running according to the database."""
        with session_scope(self.url) as s:
            rows = s.execute(
                select(Job.queue, Job.state, func.count())
                .where(Job.state.in_(("queued", "running")))
                .group_by(Job.queue, Job.state)
            ).all()
        out: dict[str, dict[str, int]] = {}
        for queue, state, n in rows:
            out.setdefault(queue, {"queued": 0, "running": 0})[state] = n
        return out


def fleet_view(settings, stale_after: float | None = None, project: str | None = None) -> dict:
    """Workers and queues: ``{"workers", "queues", "stale_after_seconds"}``; with
    ``project``, only that project's job ids are shown."""
    store = FleetStore(settings.database_url)
    if stale_after is None:
        stale_after = max(settings.lease_seconds, 3 * settings.heartbeat_seconds)
    workers = store.workers(stale_after, project=project)
    counts = store.job_counts()
    names = {"default", *counts}
    for w in workers:
        if w["state"] != "stopped":
            names.update(w["queues"])
    depths = queue_depths(settings.broker_url, settings.home, sorted(names))
    queues = []
    for name in sorted(names):
        c = counts.get(name, {"queued": 0, "running": 0})
        consumers = sum(
            1 for w in workers if w["state"] in ("idle", "busy") and name in w["queues"]
        )
        queues.append(
            {
                "name": name,
                "depth": depths.get(name),
                "queued_jobs": c["queued"],
                "running_jobs": c["running"],
                "workers": consumers,
            }
        )
    return {"workers": workers, "queues": queues, "stale_after_seconds": stale_after}


def queue_depths(broker_url: str, home: str, queues: list[str]) -> dict[str, int | None]:
    """Messages waiting in each queue; None for a queue the broker could not be asked about."""
    try:
        depths = broker.queue_depths(broker_url, home, queues)
    except Exception as exc:  # noqa: BLE001 - the broker is away: show what is known
        log.warning("queue depths unavailable: %s", exc.__class__.__name__)
        depths = None
    return depths if depths is not None else {q: None for q in queues}
