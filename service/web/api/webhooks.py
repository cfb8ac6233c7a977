"""Webhook endpoints (admin tokens only): register, list, delete, and a hook's delivery log."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from service.core.errors import BadRequest, Forbidden
from service.ops.webhooks import check_url
from service.store.tokens import check_project
from service.store.webhooks import WebhookStore, check_kinds
from service.web.api import ctx, int_arg
from service.web.api.jobs import _json_body
from service.web.auth import caller

bp = Blueprint("webhooks", __name__)
FIELDS = ("project", "url", "events")


def _admin() -> WebhookStore:
    if not caller().is_admin:
        raise Forbidden(
            "webhooks are managed with an admin token (fitfleet token create --admin)",
            code="admin_only",
        )
    return WebhookStore(ctx().settings.database_url)


@bp.post("/webhooks")
def create_webhook():
    """Register a URL for a project's events; the answer holds the signing secret, once."""
    store = _admin()
    body = _json_body(64_000)
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object: {project, url, events}")
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise BadRequest(
            f"unknown field {unknown[0]!r}; allowed: {', '.join(FIELDS)}",
            details={"field": unknown[0]},
        )
    project = check_project(body.get("project", caller().project))
    url = check_url(body.get("url"), ctx().settings)
    hook = store.create(project, url, check_kinds(body.get("events")))
    response = jsonify(hook)
    response.status_code = 201
    return response


@bp.get("/webhooks")
def list_webhooks():
    """Every hook, or one project's (``?project=``)."""
    project = request.args.get("project") or None
    return jsonify({"webhooks": _admin().list(check_project(project) if project else None)})


@bp.delete("/webhooks/<int:hook_id>")
def delete_webhook(hook_id: int):
    """Remove a hook and its delivery log; nothing more is sent to it."""
    _admin().delete(hook_id)
    return "", 204


@bp.get("/webhooks/<int:hook_id>/deliveries")
def list_deliveries(hook_id: int):
    """The hook's delivery log, newest first: state, tries, last status and error."""
    limit = int_arg("limit", 100, lo=1, hi=1000)
    return jsonify({"deliveries": _admin().deliveries(hook_id, limit=limit)})
