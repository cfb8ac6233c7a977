"""The sweep controller: submits sweeps, asks for trials as slots free up, cancels.

A short transaction that locks the sweep row brings its trials up to date with their
jobs and counts the free slots; the new trials' parameters are then sampled from the
trials so far and their job specs admitted as any job's, outside any lock; a second
locked transaction writes each trial with its job unless another process added a trial
meanwhile (:meth:`service.store.sweeps.SweepStore.advance`); the jobs are enqueued
through the normal path after the commit. It runs when a sweep is submitted, when a
trial's job ends (in the worker that ran it) and in the reaper's periodic pass, so a
process that dies at any point loses no trial and makes none twice.
"""

from __future__ import annotations

import logging

from service.admission import submit as admission
from service.core.config import Settings
from service.core.dispatch import enqueue
from service.core.errors import Conflict, FitfleetError
from service.store.jobs import JobStore
from service.store.sweeps import SweepStore
from service.sweeps import search, space
from service.sweeps.spec import admit

log = logging.getLogger("fitfleet.sweeps")


def records(rows: list[dict]) -> list[search.TrialRecord]:
    """The store's trial rows as the search reads them."""
    keys = ("number", "params", "state", "objective", "values", "attrs")
    return [search.TrialRecord(**{k: r[k] for k in keys}) for r in rows]


def submit(raw: object, settings: Settings, project: str) -> dict:
    """Admit a sweep spec, store the sweep and start its first trials; returns the sweep."""
    spec = admit(raw, settings)
    store = SweepStore(settings.database_url)
    sweep_id = store.create(spec, project)
    advance(settings, sweep_id)
    return store.get(sweep_id)


def _proposer(settings: Settings, sweep_id: str):
    def propose(spec: dict, rows: list[dict], number: int):
        params = search.ask(sweep_id, spec, records(rows), number)
        try:
            job_spec, summary = admission.admit(space.with_values(spec["base"], params), settings)
        except FitfleetError as exc:
            log.warning("sweep %s trial %d refused: %s", sweep_id, number, exc.message)
            return params, None, f"the sampled parameters make a refused job spec: {exc.message}"
        return params, job_spec, summary

    return propose


def advance(settings: Settings, sweep_id: str) -> list[str]:
    """Sync the sweep's trials with their jobs and start new trials; returns their job ids."""
    jobs = SweepStore(settings.database_url).advance(sweep_id, _proposer(settings, sweep_id))
    for job in jobs:
        try:
            enqueue(settings.broker_url, settings.home, job["id"], job["queue"], job["priority"])
        except FitfleetError:
            log.warning("sweep %s: job %s not enqueued; the reaper sends it again", sweep_id, job)
        log.info("sweep %s: trial job %s queued", sweep_id, job["id"])
    return [job["id"] for job in jobs]


def advance_all(settings: Settings) -> None:
    """The periodic pass: every sweep that is running or has trials still to settle."""
    try:
        unsettled = SweepStore(settings.database_url).unsettled()
    except Exception:
        log.exception("sweeps: could not list the sweeps to advance; retrying on the next pass")
        return
    for sweep_id in unsettled:
        try:
            advance(settings, sweep_id)
        except Exception:
            log.exception("sweep %s: advancing failed; retrying on the next pass", sweep_id)


def on_job_ended(settings: Settings, job_id: str) -> None:
    """A job ended: if it was a trial, its sweep may start the next one now."""
    trial = SweepStore(settings.database_url).trial_of(job_id)
    if trial is not None:
        advance(settings, trial["sweep_id"])


def cancel(settings: Settings, sweep_id: str, project: str | None) -> dict:
    """Cancel the sweep: no new trials, and its running trials' jobs are asked to stop."""
    store = SweepStore(settings.database_url)
    jobs = JobStore(settings.database_url)
    for job_id in store.cancel(sweep_id, project):
        try:
            jobs.request_cancel(job_id)
        except Conflict:
            pass  # ended meanwhile
    advance(settings, sweep_id)
    return store.get(sweep_id)
