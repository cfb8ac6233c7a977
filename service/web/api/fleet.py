"""The fleet endpoint: workers with their queues and jobs, and each queue's depth."""

from __future__ import annotations

from flask import Blueprint, jsonify

from service.store.fleet import fleet_view
from service.store.projects import ProjectStore
from service.web.api import ctx
from service.web.auth import scope

bp = Blueprint("fleet", __name__)


@bp.get("/fleet")
def get_fleet():
    """``{"workers": [...], "queues": [...], "stale_after_seconds", "projects": [...]}``; a
    project's token sees the job ids, and the share, of its own project only."""
    settings, own = ctx().settings, scope()
    view = fleet_view(settings, project=own)
    projects = ProjectStore(settings.database_url)
    view["projects"] = projects.list(names=None if own is None else [own])
    return jsonify(view)
