"""Job endpoints: submit, list, get, cancel, and a job's attempts, checkpoints and summary."""

from __future__ import annotations

import json
import logging

from flask import Blueprint, jsonify, request, url_for

from service.admission.submit import admit
from service.core.dispatch import enqueue
from service.core.errors import BadRequest, NotFound, PayloadTooLarge, Unavailable
from service.store.detail import timeline
from service.store.tables import STATES
from service.store.views import served_checkpoint
from service.web.api import choice_arg, ctx, int_arg
from service.web.auth import caller, scope

bp = Blueprint("jobs", __name__)
log = logging.getLogger(__name__)


@bp.post("/jobs")
def create_job():
    """Check the spec, build its model once, store the job and hand it to the queue."""
    c = ctx()
    normalized, summary = admit(_json_body(c.settings.max_spec_bytes), c.settings)
    job = c.jobs.create(
        normalized,
        epochs=normalized["fit"]["epochs"],
        summary=summary,
        max_attempts=normalized["max_attempts"],
        project=caller().project,
    )
    try:
        enqueue(
            c.settings.broker_url,
            c.settings.home,
            job["id"],
            normalized["queue"],
            normalized["priority"],
        )
    except Unavailable:
        c.jobs.delete(job["id"])
        raise
    if normalized["priority"] > 0:  # it may outrank a running job: preempt now, not next sweep
        _preempt(c.settings)
    response = jsonify(job)
    response.status_code = 201
    response.headers["Location"] = url_for("jobs.get_job", job_id=job["id"])
    return response


def _preempt(settings) -> None:
    from service.ops.reaper import preempt

    try:
        preempt(settings)
    except Exception:  # the reaper's next sweep runs the same pass
        log.exception("preemption pass after a submit failed; the reaper retries it")


@bp.get("/jobs")
def list_jobs():
    """Newest first, ``limit`` per page; ``next`` is the cursor of the following page."""
    state = choice_arg("state", STATES, None)
    limit = int_arg("limit", 50, lo=1, hi=500)
    cursor = request.args.get("cursor") or None
    try:
        jobs, next_cursor = ctx().jobs.list(state, limit, cursor, project=scope())
    except NotFound as exc:
        raise BadRequest(
            "query parameter cursor is not the next cursor of a previous page",
            details={"parameter": "cursor"},
        ) from exc
    return jsonify({"jobs": jobs, "next": next_cursor})


@bp.get("/jobs/<job_id>")
def get_job(job_id: str):
    return jsonify(ctx().jobs.get(job_id, project=scope()))


@bp.post("/jobs/<job_id>/cancel")
def cancel_job(job_id: str):
    """Cancel a queued job now, or ask a running job's worker to stop (409 if ended)."""
    job = ctx().jobs.request_cancel(job_id, project=scope())
    return jsonify(job), 202


@bp.get("/jobs/<job_id>/attempts")
def list_attempts(job_id: str):
    return jsonify({"attempts": timeline(ctx().jobs.attempts(job_id, project=scope()))})


@bp.get("/jobs/<job_id>/checkpoints")
def list_checkpoints(job_id: str):
    checkpoints = ctx().jobs.checkpoints(job_id, project=scope())
    return jsonify({"checkpoints": [served_checkpoint(c) for c in checkpoints]})


@bp.get("/jobs/<job_id>/summary")
def get_summary(job_id: str):
    """The Keras model summary computed when the job was submitted."""
    summary = ctx().jobs.summary(job_id, project=scope())
    if summary is None:
        raise NotFound(f"job {job_id} has no model summary", code="summary_not_available")
    return jsonify(summary)


def _json_body(limit: int) -> object:
    """The request body parsed as JSON; 413 past ``limit`` bytes, 400 if malformed."""
    too_large = PayloadTooLarge(
        f"the request body is larger than the limit of {limit} bytes (FITFLEET_MAX_SPEC_BYTES)",
        details={"limit": limit, "setting": "FITFLEET_MAX_SPEC_BYTES"},
    )
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    data = request.get_data(cache=False)
    if request.content_length is None and len(data) >= limit:  # a streamed body cut at the limit
        raise too_large
    try:
        return json.loads(data, parse_constant=_no_constant)
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)[:200]
        if isinstance(exc, RecursionError):
            reason = "nested too deeply"
        raise BadRequest(f"the request body is not valid JSON: {reason}", code="bad_json") from exc


def _no_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")
