"""Sweeps, their trials and the pruner's decisions, as rows (plain dicts leave the store).

Each transaction that changes a sweep's trials first writes the sweep row (a row lock on
PostgreSQL, the write lock on SQLite), so two processes advancing one sweep take turns:
no trial number is used twice and no more than ``max_parallel`` trials run at once. New
trials are proposed between two such transactions and written, each trial with its job
row, in the second one, only if no trial was added meanwhile; the job is enqueued after it
commits (a job whose message was lost is sent again by the reaper). A pruning decision
is keyed by (job, epoch): the first one written wins and is what every reader gets.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import and_, or_, select, update

from service.core.errors import Conflict, NotFound
from service.store.db import get_engine, session_scope
from service.store.jobs import new_job
from service.store.rollups import insert_for
from service.store.tables import ENDED, Job, PruningDecision, Sweep, Trial, utcnow
from service.store.views import iso

SWEEP_STATES = ("running", "finished", "cancelled")
TRIAL_STATES = ("running", "succeeded", "pruned", "failed", "cancelled")
ID_LENGTH = 32


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


class SweepStore:
    """The sweeps, trials and pruning_decisions tables."""

    def __init__(self, database_url: str):
        self.url = database_url

    # -- the API side ----------------------------------------------------------------

    def create(self, spec: dict, project: str) -> str:
        sweep = Sweep(
            id=uuid.uuid4().hex,
            name=spec.get("name") or "sweep",
            project=project,
            state="running",
            spec=spec,
            created_at=utcnow(),
            updated_at=utcnow(),
        )
        with session_scope(self.url) as s:
            s.add(sweep)
        return sweep.id

    def get(self, sweep_id: str, project: str | None = None) -> dict:
        with session_scope(self.url) as s:
            return self._view(s, self._sweep(s, sweep_id, project), with_trials=True)

    def list(
        self, state: str | None, limit: int, cursor: str | None, project: str | None = None
    ) -> tuple[list[dict], str | None]:
        """Newest first; ``cursor`` is the id of the last sweep of the previous page."""
        with session_scope(self.url) as s:
            q = select(Sweep)
            if state:
                q = q.where(Sweep.state == state)
            if project is not None:
                q = q.where(Sweep.project == project)
            if cursor:
                last = self._sweep(s, cursor, project)
                q = q.where(
                    or_(
                        Sweep.created_at < last.created_at,
                        and_(Sweep.created_at == last.created_at, Sweep.id < last.id),
                    )
                )
            rows = s.scalars(
                q.order_by(Sweep.created_at.desc(), Sweep.id.desc()).limit(limit + 1)
            ).all()
            more = len(rows) > limit
            rows = rows[:limit]
            return [self._view(s, r) for r in rows], (rows[-1].id if more else None)

    def cancel(self, sweep_id: str, project: str | None = None) -> list[str]:
        """Mark the sweep cancelled; returns the jobs of its trials still running."""
        now = utcnow()
        with session_scope(self.url) as s:
            sweep = self._sweep(s, sweep_id, project)
            if sweep.state != "running":
                raise Conflict(f"sweep {sweep_id} has already ended ({sweep.state})")
            s.execute(
                update(Sweep)
                .where(Sweep.id == sweep_id, Sweep.state == "running")
                .values(state="cancelled", updated_at=now, finished_at=now)
            )
            return list(
                s.scalars(
                    select(Trial.job_id).where(
                        Trial.sweep_id == sweep_id,
                        Trial.state == "running",
                        Trial.job_id.is_not(None),
                    )
                )
            )

    # -- the controller's side -----------------------------------------------------------

    def unsettled(self) -> list[str]:
        """Sweeps still running, or with trials whose rows have not caught up with their job."""
        with session_scope(self.url) as s:
            running = s.scalars(select(Sweep.id).where(Sweep.state == "running")).all()
            behind = s.scalars(
                select(Trial.sweep_id).where(Trial.state == "running").distinct()
            ).all()
            return sorted(set(running) | set(behind))

    def advance(self, sweep_id: str, propose: Callable) -> list[dict]:
        """Bring the trials up to date with their jobs and start trials into free slots.

        ``propose(sweep_spec, records, number)`` returns ``(params, spec, summary)`` for
        trial ``number``, or ``(params, None, message)`` when admission refused it (the
        trial is recorded failed). It runs between two short locked transactions, not
        inside one (admission builds a model and may read data headers: seconds the lock
        must not be held); the second writes the proposals only if no other process added
        a trial meanwhile. Returns the new jobs to enqueue (id, queue, priority).
        """
        plan = self._settle(sweep_id)
        if plan is None:
            return []
        spec, records, number, free = plan
        proposals = []
        for i in range(free):
            params, job_spec, extra = propose(spec, records, number + i)
            proposals.append((params, job_spec, extra))
            records = [
                *records,
                {
                    "number": number + i,
                    "params": params,
                    "state": "running",
                    "objective": None,
                    "values": {},
                    "attrs": {},
                    "job_id": None,
                },
            ]
        return self._start(sweep_id, number, proposals)

    def _lock(self, s, sweep_id: str, now: datetime) -> tuple[Sweep, list[Trial]] | None:
        """Write the sweep row first (its lock), then read it and its trials, synced."""
        locked = s.execute(update(Sweep).where(Sweep.id == sweep_id).values(updated_at=now))
        if not locked.rowcount:
            return None
        sweep = s.get(Sweep, sweep_id)
        trials = list(
            s.scalars(select(Trial).where(Trial.sweep_id == sweep_id).order_by(Trial.number))
        )
        self._sync(s, trials, now)
        return sweep, trials

    @staticmethod
    def _finish_if_done(sweep: Sweep, trials: list[Trial], now: datetime) -> int:
        """Mark a sweep whose trials have all run finished; returns its free slots."""
        spec = sweep.spec
        running = sum(t.state == "running" for t in trials)
        if len(trials) >= spec["max_trials"] and running == 0:
            sweep.state, sweep.finished_at = "finished", now
        return max(0, min(spec["max_parallel"] - running, spec["max_trials"] - len(trials)))

    def _settle(self, sweep_id: str):
        """Sync the trials; ``(spec, records, next number, free slots)`` of a running sweep
        with free slots, else None."""
        now = utcnow()
        with session_scope(self.url) as s:
            held = self._lock(s, sweep_id, now)
            if held is None or held[0].state != "running":
                return None
            sweep, trials = held
            free = self._finish_if_done(sweep, trials, now)
            if sweep.state != "running" or not free:
                return None
            return sweep.spec, self._records(s, sweep_id), len(trials), free

    def _start(self, sweep_id: str, number: int, proposals: list[tuple]) -> list[dict]:
        """Write the proposed trials and their jobs, unless the sweep moved on meanwhile."""
        now = utcnow()
        new_jobs = []
        with session_scope(self.url) as s:
            held = self._lock(s, sweep_id, now)
            if held is None or held[0].state != "running" or len(held[1]) != number:
                return []
            sweep, trials = held
            spec = sweep.spec
            running = sum(t.state == "running" for t in trials)
            for params, job_spec, extra in proposals:
                if running >= spec["max_parallel"] or number >= spec["max_trials"]:
                    break
                trial = Trial(
                    sweep_id=sweep_id, number=number, params=params, state="running", created_at=now
                )
                if job_spec is None:
                    trial.state, trial.error_message, trial.finished_at = "failed", extra, now
                else:
                    job_spec = {**job_spec, "name": f"{sweep.name}-trial-{number}"}
                    job = new_job(
                        job_spec,
                        epochs=job_spec["fit"]["epochs"],
                        summary=extra,
                        max_attempts=job_spec["max_attempts"],
                        project=sweep.project,
                    )
                    s.add(job)
                    s.flush()
                    trial.job_id = job.id
                    new_jobs.append({"id": job.id, "queue": job.queue, "priority": job.priority})
                    running += 1
                s.add(trial)
                s.flush()
                trials.append(trial)
                number += 1
            self._finish_if_done(sweep, trials, now)
        return new_jobs

    def _sync(self, s, trials: list[Trial], now: datetime) -> None:
        """Trials whose job ended take its outcome (pruned: stopped by the pruner)."""
        live = [t for t in trials if t.state == "running"]
        jobs = {
            j.id: j
            for j in s.scalars(select(Job).where(Job.id.in_([t.job_id for t in live if t.job_id])))
        }
        for t in live:
            job = jobs.get(t.job_id)
            if job is not None and job.state not in ENDED:
                continue
            t.finished_at = now
            if job is None:
                t.state, t.error_message = "failed", "its job was deleted"
                continue
            t.objective = _finite(self._last_value(s, job.id))
            stopped = (job.summary or {}).get("stopped") or {}
            if job.state == "succeeded" and stopped.get("by") == "pruner":
                t.state, t.pruned_epoch = "pruned", stopped.get("epoch")
            elif job.state == "succeeded":
                t.state = "succeeded"
            else:
                t.state, t.error_message = job.state, job.error_message

    @staticmethod
    def _last_value(s, job_id: str) -> float | None:
        return s.scalar(
            select(PruningDecision.value)
            .where(PruningDecision.job_id == job_id)
            .order_by(PruningDecision.epoch.desc())
            .limit(1)
        )

    def records(self, sweep_id: str) -> tuple[dict, list[dict]]:
        """The sweep's spec and its trials as the search reads them."""
        with session_scope(self.url) as s:
            sweep = s.get(Sweep, sweep_id)
            return sweep.spec, self._records(s, sweep_id)

    @staticmethod
    def _records(s, sweep_id: str) -> list[dict]:
        trials = s.scalars(select(Trial).where(Trial.sweep_id == sweep_id)).all()
        decisions = s.scalars(
            select(PruningDecision)
            .where(PruningDecision.sweep_id == sweep_id)
            .order_by(PruningDecision.epoch)
        ).all()
        by_job: dict[str, list[PruningDecision]] = {}
        for d in decisions:
            by_job.setdefault(d.job_id, []).append(d)
        out = []
        for t in sorted(trials, key=lambda t: t.number):
            attrs: dict = {}
            values = {}
            for d in by_job.get(t.job_id, []):
                values[d.epoch + 1] = math.nan if d.value is None else d.value
                attrs.update(d.attrs or {})
            out.append(
                {
                    "number": t.number,
                    "job_id": t.job_id,
                    "params": t.params,
                    "state": t.state,
                    "objective": t.objective,
                    "values": values,
                    "attrs": attrs,
                }
            )
        return out

    # -- the worker's side ---------------------------------------------------------------

    def trial_of(self, job_id: str) -> dict | None:
        """The sweep and trial number of ``job_id``'s trial, or None for a plain job."""
        with session_scope(self.url) as s:
            row = s.execute(
                select(Trial.sweep_id, Trial.number, Sweep.spec)
                .join(Sweep, Sweep.id == Trial.sweep_id)
                .where(Trial.job_id == job_id)
            ).first()
            if row is None:
                return None
            return {"sweep_id": row[0], "number": row[1], "spec": row[2]}

    def decision(self, job_id: str, epoch: int) -> bool | None:
        """The recorded verdict for ``job_id`` at the end of ``epoch``, or None."""
        with session_scope(self.url) as s:
            return s.scalar(
                select(PruningDecision.prune).where(
                    PruningDecision.job_id == job_id, PruningDecision.epoch == epoch
                )
            )

    def record_decision(
        self, sweep_id: str, job_id: str, epoch: int, value: float, prune: bool, attrs: dict
    ) -> bool:
        """Record a verdict unless one exists (first write wins); returns the recorded one."""
        insert = insert_for(get_engine(self.url).dialect.name)
        stored = None if value is None or math.isnan(value) else float(value)
        with session_scope(self.url) as s:
            s.execute(
                insert(PruningDecision)
                .values(
                    job_id=job_id,
                    epoch=epoch,
                    sweep_id=sweep_id,
                    value=stored,
                    prune=prune,
                    attrs=attrs,
                    decided_at=utcnow(),
                )
                .on_conflict_do_nothing(index_elements=["job_id", "epoch"])
            )
        return bool(self.decision(job_id, epoch))

    def decisions(self, job_id: str) -> list[dict]:
        """The verdicts recorded for ``job_id``'s trial, by epoch."""
        with session_scope(self.url) as s:
            rows = s.scalars(
                select(PruningDecision)
                .where(PruningDecision.job_id == job_id)
                .order_by(PruningDecision.epoch)
            ).all()
            return [_verdict(d) for d in rows]

    # -- views -------------------------------------------------------------------------

    @staticmethod
    def _sweep(s, sweep_id: str, project: str | None) -> Sweep:
        ok = isinstance(sweep_id, str) and len(sweep_id) == ID_LENGTH and sweep_id.isalnum()
        sweep = s.get(Sweep, sweep_id) if ok else None
        if sweep is None or (project is not None and sweep.project != project):
            raise NotFound(f"no sweep with id {sweep_id!r}")
        return sweep

    def _view(self, s, sweep: Sweep, with_trials: bool = False) -> dict:
        trials = s.scalars(
            select(Trial).where(Trial.sweep_id == sweep.id).order_by(Trial.number)
        ).all()
        steps = dict(
            s.execute(
                select(Job.id, Job.step).where(Job.id.in_([t.job_id for t in trials if t.job_id]))
            ).all()
        )
        views = [_trial_view(t, steps.get(t.job_id)) for t in trials]
        if with_trials:
            verdicts = _verdicts(s, sweep.id)
            for view in views:
                view["verdicts"] = verdicts.get(view["job_id"], [])
        spec = sweep.spec
        counts = {state: sum(t["state"] == state for t in views) for state in TRIAL_STATES}
        out = {
            "id": sweep.id,
            "name": sweep.name,
            "project": sweep.project,
            "state": sweep.state,
            "objective": spec["objective"],
            "sampler": spec["sampler"],
            "pruner": spec["pruner"],
            "max_trials": spec["max_trials"],
            "max_parallel": spec["max_parallel"],
            "seed": spec["seed"],
            "space": spec["space"],
            "trial_counts": counts,
            "steps": sum(t["steps"] or 0 for t in views),
            "best": best(views, spec["objective"]["direction"]),
            "created_at": iso(sweep.created_at),
            "finished_at": iso(sweep.finished_at),
        }
        if with_trials:
            out["trials"] = views
        return out


def best(trials: list[dict], direction: str) -> dict | None:
    """The succeeded trial with the best objective (ties: the lowest number)."""
    done = [t for t in trials if t["state"] == "succeeded" and _finite(t["objective"]) is not None]
    if not done:
        return None
    sign = 1 if direction == "min" else -1
    return min(done, key=lambda t: (sign * t["objective"], t["number"]))


def _verdict(d: PruningDecision) -> dict:
    return {"epoch": d.epoch, "value": d.value, "prune": d.prune, "decided_at": iso(d.decided_at)}


def _verdicts(s, sweep_id: str) -> dict[str, list[dict]]:
    rows = s.scalars(
        select(PruningDecision)
        .where(PruningDecision.sweep_id == sweep_id)
        .order_by(PruningDecision.epoch)
    ).all()
    out: dict[str, list[dict]] = {}
    for d in rows:
        out.setdefault(d.job_id, []).append(_verdict(d))
    return out


def _trial_view(t: Trial, steps: int | None) -> dict:
    return {
        "number": t.number,
        "job_id": t.job_id,
        "params": t.params,
        "state": t.state,
        "objective": _finite(t.objective),
        "pruned_epoch": t.pruned_epoch,
        "error": t.error_message,
        "steps": steps,
        "created_at": iso(t.created_at),
        "finished_at": iso(t.finished_at),
    }
