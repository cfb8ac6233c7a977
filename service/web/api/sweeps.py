"""Sweep endpoints: submit, list, get and cancel; a sweep's trials are ordinary jobs."""

from __future__ import annotations

from flask import Blueprint, jsonify, request, url_for

from service.core.errors import BadRequest, NotFound
from service.store.sweeps import SWEEP_STATES, SweepStore
from service.sweeps import controller
from service.web.api import choice_arg, ctx, int_arg
from service.web.api.jobs import _json_body
from service.web.auth import caller, scope

bp = Blueprint("sweeps", __name__)


@bp.post("/sweeps")
def create_sweep():
    """Admit the sweep spec, store the sweep and queue its first trials."""
    c = ctx()
    sweep = controller.submit(_json_body(c.settings.max_spec_bytes), c.settings, caller().project)
    response = jsonify(sweep)
    response.status_code = 201
    response.headers["Location"] = url_for("sweeps.get_sweep", sweep_id=sweep["id"])
    return response


@bp.get("/sweeps")
def list_sweeps():
    """Newest first, ``limit`` per page; ``next`` is the cursor of the following page."""
    state = choice_arg("state", SWEEP_STATES, None)
    limit = int_arg("limit", 50, lo=1, hi=500)
    cursor = request.args.get("cursor") or None
    try:
        sweeps, next_cursor = SweepStore(ctx().settings.database_url).list(
            state, limit, cursor, project=scope()
        )
    except NotFound as exc:
        raise BadRequest(
            "query parameter cursor is not the next cursor of a previous page",
            details={"parameter": "cursor"},
        ) from exc
    return jsonify({"sweeps": sweeps, "next": next_cursor})


@bp.get("/sweeps/<sweep_id>")
def get_sweep(sweep_id: str):
    return jsonify(SweepStore(ctx().settings.database_url).get(sweep_id, project=scope()))


@bp.post("/sweeps/<sweep_id>/cancel")
def cancel_sweep(sweep_id: str):
    """Start no new trial and cancel the running ones (409 if the sweep has ended)."""
    return jsonify(controller.cancel(ctx().settings, sweep_id, scope())), 202
