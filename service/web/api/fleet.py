"""The fleet endpoint: workers with their queues and jobs, and each queue's depth."""

from __future__ import annotations

from flask import Blueprint, jsonify

from service.store.fleet import fleet_view
from service.web.api import ctx
from service.web.auth import scope

bp = Blueprint("fleet", __name__)


@bp.get("/fleet")
def get_fleet():
    """``{"workers": [...], "queues": [...], "stale_after_seconds"}``; a project's token
    sees the job ids of its own project only."""
    return jsonify(fleet_view(ctx().settings, project=scope()))
