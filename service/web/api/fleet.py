"""The fleet endpoint: workers with their queues and jobs, and each queue's depth."""

from __future__ import annotations

from flask import Blueprint, jsonify

from service.fleet import fleet_view
from service.web.api import ctx

bp = Blueprint("fleet", __name__)


@bp.get("/fleet")
def get_fleet():
    """``{"workers": [...], "queues": [...], "stale_after_seconds"}``."""
    return jsonify(fleet_view(ctx().settings))
