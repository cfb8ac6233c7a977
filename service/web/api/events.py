"""What happened to a job: its event timeline and the log lines its workers wrote."""

from __future__ import annotations

from flask import Blueprint, jsonify

from service.store import events, worklogs
from service.web.api import ctx, int_arg
from service.web.auth import scope

bp = Blueprint("events", __name__)


@bp.get("/jobs/<job_id>/events")
def list_job_events(job_id: str):
    """Events with id > ``after``, oldest first; ``next`` is the ``after`` of the next poll."""
    after = int_arg("after", None, lo=0, hi=events.MAX_ID)
    limit = int_arg("limit", 1000, lo=1, hi=1000)
    url = ctx().settings.database_url
    return jsonify(events.list_events(url, job_id, after=after, limit=limit, project=scope()))


@bp.get("/jobs/<job_id>/logs")
def list_worker_logs(job_id: str):
    """Log lines (warnings and worse) the job's workers wrote, of one attempt if asked."""
    attempt = int_arg("attempt", None, lo=1, hi=2**31 - 1)
    after = int_arg("after", None, lo=0, hi=events.MAX_ID)
    limit = int_arg("limit", 1000, lo=1, hi=1000)
    url = ctx().settings.database_url
    page = worklogs.read(url, job_id, attempt=attempt, after=after, limit=limit, project=scope())
    return jsonify(page)
