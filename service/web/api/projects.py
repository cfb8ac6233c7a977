"""Project endpoints: each project's fair-share weight, quotas and use of the fleet.

Any token may read its own project (an admin token: every project); only an admin token
may change one (``PUT``), as ``fitfleet project set`` does on the server side.
"""

from __future__ import annotations

from flask import Blueprint, jsonify, request
from pydantic import ValidationError

from service.core.errors import BadRequest, Forbidden, NotFound
from service.store.projects import ProjectStore
from service.store.tokens import check_project
from service.web.api import ctx
from service.web.auth import caller, scope
from service.web.schemas import ProjectSettings

bp = Blueprint("projects", __name__)


def _store() -> ProjectStore:
    return ProjectStore(ctx().settings.database_url)


@bp.get("/projects")
def list_projects():
    """Every project with settings or active jobs (a project's token: its own only)."""
    own = scope()
    return jsonify({"projects": _store().list(names=None if own is None else [own])})


@bp.get("/projects/<name>")
def get_project(name: str):
    own = scope()
    if own is not None and name != own:
        raise NotFound(f"no project {name!r} for this token")
    return jsonify(_store().get(check_project(name)))


@bp.put("/projects/<name>")
def set_project(name: str):
    """Change a project's weight and quotas (admin tokens only); fields not sent keep
    their value, ``null`` removes a quota."""
    if not caller().is_admin:
        raise Forbidden("changing a project's weight or quotas needs an admin token")
    check_project(name)
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest('the body must be a JSON object such as {"weight": 3, "max_running": 4}')
    try:
        fields = ProjectSettings.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        raise BadRequest(f"{field}: {first['msg']}", details={"field": field}) from exc
    if "weight" in body and body["weight"] is None:
        raise BadRequest(
            "weight: a project always has a weight (above 0)", details={"field": "weight"}
        )
    changes = {k: getattr(fields, k) for k in ("weight", "max_running", "max_gpus") if k in body}
    return jsonify(_store().set(name, **changes))
