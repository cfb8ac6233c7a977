"""Projects: each one's fair-share weight and quotas, and how much of the fleet it holds.

A project is named by its tokens and jobs; it needs no row to exist. A project without a
row in ``projects`` has weight 1 and no limits, so a fleet with one project behaves as if
there were no projects at all. An admin sets a row with ``fitfleet project set`` or
``PUT /api/v1/projects/{name}``; the scheduler (:mod:`service.store.scheduler`) reads the
rows in the transaction that decides each claim.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from service.core.errors import BadRequest
from service.store.db import session_scope
from service.store.tables import Job, Project, utcnow
from service.store.tokens import check_project

DEFAULT_WEIGHT = 1.0
UNSET = object()  # "leave this field as it is" in :meth:`ProjectStore.set`


@dataclass(frozen=True)
class Limits:
    """A project's weight and quotas (None: no limit)."""

    weight: float = DEFAULT_WEIGHT
    max_running: int | None = None
    max_gpus: int | None = None


def limits_of(s) -> dict[str, Limits]:
    """Every configured project's :class:`Limits`, read in session ``s``."""
    return {p.name: Limits(p.weight, p.max_running, p.max_gpus) for p in s.scalars(select(Project))}


def check_weight(weight: object) -> float:
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight > 0:
        raise BadRequest("weight must be a number above 0 (e.g. 1 or 3)", code="bad_weight")
    if weight > 1e6:
        raise BadRequest("weight must be at most 1000000", code="bad_weight")
    return float(weight)


def check_limit(name: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1_000_000:
        raise BadRequest(
            f"{name} must be a whole number from 0 to 1000000, or null for no limit",
            code="bad_limit",
        )
    return value


class ProjectStore:
    """The ``projects`` table and each project's use of the fleet."""

    def __init__(self, database_url: str):
        self.url = database_url

    def set(self, name: str, *, weight=UNSET, max_running=UNSET, max_gpus=UNSET) -> dict:
        """Create or change a project's row; fields left UNSET keep their value (or default)."""
        check_project(name)
        values = {}
        if weight is not UNSET:
            values["weight"] = check_weight(weight)
        if max_running is not UNSET:
            values["max_running"] = check_limit("max_running", max_running)
        if max_gpus is not UNSET:
            values["max_gpus"] = check_limit("max_gpus", max_gpus)
        with session_scope(self.url) as s:
            row = s.get(Project, name, with_for_update=True)
            if row is None:
                row = Project(name=name, weight=DEFAULT_WEIGHT, updated_at=utcnow())
                s.add(row)
            for key, value in values.items():
                setattr(row, key, value)
            row.updated_at = utcnow()
        return self.get(name)

    def delete(self, name: str) -> bool:
        """Remove a project's row: it goes back to weight 1 and no limits."""
        with session_scope(self.url) as s:
            row = s.get(Project, check_project(name))
            if row is None:
                return False
            s.delete(row)
            return True

    def get(self, name: str) -> dict:
        """One project's settings and use (a project with no row shows the defaults)."""
        return self.list(names=[check_project(name)])[0]

    def list(self, names: list[str] | None = None) -> list[dict]:
        """Each project that has a row or an active job (or each of ``names``), by name.

        ``share`` is the project's part of the fleet's running jobs, ``weight_share`` its
        weight's part of the weights of the projects that want to run (a queued or running
        job, or the project asked about).
        """
        with session_scope(self.url) as s:
            limits = limits_of(s)
            rows = s.execute(
                select(Job.project, Job.state, func.count(), func.coalesce(func.sum(Job.gpus), 0))
                .where(Job.state.in_(("queued", "running")))
                .group_by(Job.project, Job.state)
            ).all()
            oldest = dict(
                s.execute(
                    select(Job.project, func.min(Job.created_at))
                    .where(Job.state == "queued")
                    .group_by(Job.project)
                ).all()
            )
        use: dict[str, dict] = {}
        for project, state, n, gpus in rows:
            u = use.setdefault(project, {"running": 0, "queued": 0, "gpus": 0})
            u[state] = n
            if state == "running":
                u["gpus"] = int(gpus)
        wanted = sorted(set(names) if names is not None else {*limits, *use})
        active = {p for p in {*use, *wanted}}
        total_running = sum(u["running"] for u in use.values())
        total_weight = sum(limits.get(p, Limits()).weight for p in active)
        now = utcnow()
        out = []
        for name in wanted:
            lim, u = (
                limits.get(name, Limits()),
                use.get(name, {"running": 0, "queued": 0, "gpus": 0}),
            )
            out.append(
                {
                    "name": name,
                    "configured": name in limits,
                    "weight": lim.weight,
                    "max_running": lim.max_running,
                    "max_gpus": lim.max_gpus,
                    "running": u["running"],
                    "queued": u["queued"],
                    "gpus": u["gpus"],
                    "share": round(u["running"] / total_running, 4) if total_running else 0.0,
                    "weight_share": round(lim.weight / total_weight, 4) if total_weight else 0.0,
                    "oldest_wait_seconds": (
                        round((now - oldest[name]).total_seconds(), 3) if name in oldest else None
                    ),
                }
            )
        return out
