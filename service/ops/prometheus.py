"""Fleet figures for Prometheus: queue depth per queue, jobs by state, attempts lost, and
goodput per project (where its jobs' wall time went, :mod:`service.store.goodput`).

:class:`FleetCollector` reads them at scrape time from the database (the jobs' truth)
and from the broker (messages waiting per queue, priority sub-queues included), so every
API process reports the same figures. Request latency is per process; it is recorded by
the web layer into :data:`REQUEST_SECONDS`.
"""

from __future__ import annotations

import logging
import os

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from sqlalchemy import func, select

from service.core.config import Settings
from service.ops import broker
from service.store.db import session_scope
from service.store.goodput import PARTS, project_goodput
from service.store.tables import ACTIVE, STATES, Attempt, Job

log = logging.getLogger(__name__)


REQUEST_SECONDS = Histogram(
    "fitfleet_api_request_duration_seconds",
    "Seconds the API took to answer a request, by method, route and status.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=None,
)


def fleet_figures(database_url: str) -> dict:
    """Jobs by state, queued jobs by queue, attempts lost, and the queues in use."""
    with session_scope(database_url) as s:
        by_state = dict(s.execute(select(Job.state, func.count()).group_by(Job.state)).all())
        queued = dict(
            s.execute(
                select(Job.queue, func.count()).where(Job.state == "queued").group_by(Job.queue)
            ).all()
        )
        active = set(s.scalars(select(Job.queue).where(Job.state.in_(ACTIVE)).distinct()))
        lost = s.scalar(select(func.count()).select_from(Attempt).where(Attempt.state == "lost"))
    return {
        "jobs": {st: int(by_state.get(st, 0)) for st in STATES},
        "queued": {q: int(n) for q, n in queued.items()},
        "queues": sorted(active | {"default"}),
        "attempts_lost": int(lost or 0),
    }


class FleetCollector:
    """A Prometheus collector reading the fleet's figures at each scrape."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def describe(self):
        return []  # figures are read at scrape time only

    def collect(self):
        up = GaugeMetricFamily(
            "fitfleet_source_up",
            "1 when the source answered this scrape, else 0.",
            labels=["source"],
        )
        try:
            figures = fleet_figures(self.settings.database_url)
            up.add_metric(["database"], 1)
        except Exception:  # the database away: the scrape still answers
            log.warning("metrics: database figures unavailable", exc_info=True)
            figures = None
            up.add_metric(["database"], 0)
        if figures is not None:
            yield from _job_families(figures)
            yield from _goodput_families(self.settings.database_url)
            try:
                depths = (
                    broker.queue_depths(
                        self.settings.broker_url, self.settings.home, figures["queues"]
                    )
                    or {}
                )
                up.add_metric(["broker"], 1)
            except Exception:
                log.warning("metrics: broker queue depth unavailable", exc_info=True)
                depths = {}
                up.add_metric(["broker"], 0)
            depth = GaugeMetricFamily(
                "fitfleet_queue_depth",
                "Messages waiting on the broker, per queue.",
                labels=["queue"],
            )
            for queue, n in sorted(depths.items()):
                depth.add_metric([queue], n)
            yield depth
        yield up


def _job_families(figures: dict):
    jobs = GaugeMetricFamily("fitfleet_jobs", "Jobs by state.", labels=["state"])
    for state, n in figures["jobs"].items():
        jobs.add_metric([state], n)
    yield jobs
    waiting = GaugeMetricFamily(
        "fitfleet_jobs_waiting",
        "Queued jobs per queue (waiting for a worker of that queue).",
        labels=["queue"],
    )
    for queue in figures["queues"]:
        waiting.add_metric([queue], figures["queued"].get(queue, 0))
    for queue, n in figures["queued"].items():
        if queue not in figures["queues"]:
            waiting.add_metric([queue], n)
    yield waiting
    lost = CounterMetricFamily(
        "fitfleet_attempts_lost", "Attempts whose worker stopped renewing its lease."
    )
    lost.add_metric([], figures["attempts_lost"])
    yield lost


def _goodput_families(database_url: str):
    try:
        projects = project_goodput(database_url)
    except Exception:  # the scrape still answers the other figures
        log.warning("metrics: goodput unavailable", exc_info=True)
        return
    seconds = GaugeMetricFamily(
        "fitfleet_project_job_seconds",
        "Wall time of a project's jobs, split by where it went (queued, starting, training, "
        "redoing, checkpoint_blocked, validation, lost).",
        labels=["project", "part"],
    )
    share = GaugeMetricFamily(
        "fitfleet_project_goodput",
        "The share of a project's jobs' wall time spent in productive training.",
        labels=["project"],
    )
    for project, split in sorted(projects.items()):
        for part in PARTS:
            seconds.add_metric([project, part], split["seconds"][part])
        share.add_metric([project], split["goodput"] or 0.0)
    yield seconds
    yield share


def make_registry(settings: Settings) -> CollectorRegistry:
    """The registry an API process serves: fleet figures and request latency.

    With ``PROMETHEUS_MULTIPROC_DIR`` set (prometheus_client's own variable), latency is
    summed over every server process instead of read from the one that answers.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(settings))
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(REQUEST_SECONDS)
    return registry


def prepare_multiprocess() -> str | None:
    """Empty ``PROMETHEUS_MULTIPROC_DIR`` (if set) before the server processes start."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder:
        return None
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):
        if name.endswith(".db"):
            os.unlink(os.path.join(folder, name))
    return folder


def server_process_exited(pid: int) -> None:
    """Forget a dead server process's live gauges (gunicorn's ``child_exit`` hook)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
