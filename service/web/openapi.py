"""The OpenAPI 3.1 document of the v1 API, built from the app's real routes.

Every ``/api/v1`` rule of the URL map appears, with each of its methods; the routes
described below get their parameters and answer schemas, any other gets a generic entry,
so the document never lists a route that does not exist or misses one that does.
"""

from __future__ import annotations

import re

from flask import Blueprint, current_app, jsonify

bp = Blueprint("openapi", __name__)
PREFIX = "/api/v1"
OPEN = {"/api/v1/healthz", "/api/v1/readyz", "/api/v1/openapi.json"}


def _nullable(schema: dict) -> dict:
    return {"anyOf": [schema, {"type": "null"}]}


STR, INT, BOOL = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
OBJ = {"type": "object"}
TIME = _nullable({"type": "string", "format": "date-time"})

SCHEMAS = {
    "Error": {
        "type": "object", "required": ["error"],
        "properties": {"error": {
            "type": "object", "required": ["code", "message", "details"],
            "properties": {"code": STR, "message": STR, "details": {}}}},
    },
    "Checkpoint": {
        "type": "object", "required": ["step", "epoch", "batch", "uri", "bytes", "sha256"],
        "properties": {"step": INT, "epoch": INT, "batch": INT, "uri": STR, "bytes": INT,
                       "sha256": STR, "created_at": TIME, "logs": OBJ, "files": OBJ},
    },
    "Job": {
        "type": "object",
        "required": ["id", "name", "project", "state", "created_at", "started_at",
                     "finished_at", "attempts", "max_attempts", "progress",
                     "latest_checkpoint", "error", "spec"],
        "properties": {
            "id": STR, "name": STR, "project": STR,
            "state": {"enum": ["queued", "running", "succeeded", "failed", "cancelled"]},
            "queue": STR, "priority": INT, "created_at": TIME, "started_at": TIME,
            "finished_at": TIME, "attempts": INT, "max_attempts": INT,
            "worker": _nullable(STR), "cancel_requested": BOOL, "model_available": BOOL,
            "progress": {"type": "object",
                         "required": ["epoch", "epochs", "batch", "steps_per_epoch", "step"],
                         "properties": {"epoch": INT, "epochs": INT, "batch": INT,
                                        "steps_per_epoch": _nullable(INT), "step": INT}},
            "latest_checkpoint": _nullable({"$ref": "#/components/schemas/Checkpoint"}),
            "metrics": {"type": "object", "description": "metric rows the database refused "
                        "(set aside, so the others were stored) and the latest reason",
                        "properties": {"rows_rejected": INT,
                                       "rejected_reason": _nullable(STR)}},
            "error": _nullable({"type": "object", "required": ["code", "message"],
                                "properties": {"code": STR, "message": _nullable(STR)}}),
            "spec": OBJ,
        },
    },
    "JobSpec": {
        "type": "object", "required": ["model", "compile", "data"],
        "description": "A job spec (see API.md): a Keras model's to_json(), compile "
                       "settings in Keras forms, data locations, fit and checkpoint options.",
        "properties": {"name": STR, "model": {"type": ["object", "string"]}, "compile": OBJ,
                       "data": OBJ, "fit": OBJ, "checkpoint": OBJ, "seed": INT,
                       "queue": STR, "priority": INT, "max_attempts": INT},
    },
}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(description: str, schema: dict) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict:
    text = {400: "bad request", 401: "no valid API token", 404: "no such job in the "
            "caller's project", 409: "the job has already ended", 413: "the body is too large",
            422: "the spec was refused (field, limit or rule named)", 503: "unavailable"}
    return {str(c): _json(text[c], _ref("Error")) for c in codes}


def _list_of(key: str, item: dict, **extra) -> dict:
    return {"type": "object", "required": [key, *extra],
            "properties": {key: {"type": "array", "items": item}, **extra}}


def _query(name: str, schema: dict, text: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": text}


NON_FINITE = ("NaN, inf and -inf, which JSON cannot hold, are the strings \"NaN\", "
              "\"Infinity\" and \"-Infinity\"")
METRIC_ROW = {"type": "object", "required": ["step", "epoch", "logs"],
              "properties": {"step": INT, "epoch": INT, "batch": _nullable(INT), "logs": {
                  "type": "object", "description": f"metric name to value; {NON_FINITE}",
                  "additionalProperties": {"oneOf": [
                      {"type": "number"}, {"enum": ["NaN", "Infinity", "-Infinity"]}]}}}}
ATTEMPT = {"type": "object", "required": ["number", "worker", "state", "started_at"],
           "properties": {"number": INT, "worker": STR, "state": STR, "started_at": TIME,
                          "ended_at": TIME, "resumed_from_step": INT}}

OPERATIONS = {
    ("post", "/api/v1/jobs"): {
        "summary": "Submit a job", "operationId": "create_job",
        "requestBody": {"required": True,
                        "content": {"application/json": {"schema": _ref("JobSpec")}}},
        "responses": {"201": _json("the job, queued", _ref("Job")),
                      **_errors(400, 401, 413, 422, 503)},
    },
    ("get", "/api/v1/jobs"): {
        "summary": "List jobs, newest first", "operationId": "list_jobs",
        "parameters": [
            _query("state", {"enum": ["queued", "running", "succeeded", "failed",
                                      "cancelled"]}, "only jobs in this state"),
            _query("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "page size"),
            _query("cursor", STR, "the next cursor of the previous page")],
        "responses": {"200": _json("a page of jobs", _list_of(
            "jobs", _ref("Job"), next=_nullable(STR))), **_errors(400, 401)},
    },
    ("get", "/api/v1/jobs/{job_id}"): {
        "summary": "A job", "operationId": "get_job",
        "responses": {"200": _json("the job", _ref("Job")), **_errors(401, 404)},
    },
    ("post", "/api/v1/jobs/{job_id}/cancel"): {
        "summary": "Cancel a job", "operationId": "cancel_job",
        "responses": {"202": _json("the job, cancelled or stopping", _ref("Job")),
                      **_errors(401, 404, 409)},
    },
    ("get", "/api/v1/jobs/{job_id}/attempts"): {
        "summary": "A job's attempts", "operationId": "list_attempts",
        "responses": {"200": _json("attempts, oldest first", _list_of("attempts", ATTEMPT)),
                      **_errors(401, 404)},
    },
    ("get", "/api/v1/jobs/{job_id}/checkpoints"): {
        "summary": "A job's committed checkpoints", "operationId": "list_checkpoints",
        "responses": {"200": _json("checkpoints, oldest first",
                                   _list_of("checkpoints", _ref("Checkpoint"))),
                      **_errors(401, 404)},
    },
    ("get", "/api/v1/jobs/{job_id}/summary"): {
        "summary": "The Keras model summary", "operationId": "get_summary",
        "responses": {"200": _json("layers and parameter counts", {
            "type": "object", "required": ["layers", "total_params"],
            "properties": {"layers": {"type": "array", "items": OBJ}, "total_params": INT}}),
            **_errors(401, 404)},
    },
    ("get", "/api/v1/jobs/{job_id}/metrics"): {
        "summary": "Metric rows after a step", "operationId": "get_metrics",
        "parameters": [
            _query("kind", {"enum": ["batch", "epoch"]}, "batch or epoch rows"),
            _query("after", {"type": "integer", "minimum": -1}, "rows with a larger step"),
            _query("max_points", {"type": "integer", "minimum": 1, "maximum": 100000},
                   "downsample to at most this many rows: the last one and each bucket's "
                   "minimum and maximum of `metric` (ordered -inf < numbers < inf < NaN)"),
            _query("metric", {"type": "string", "pattern": "^[A-Za-z0-9_./-]{1,100}$"},
                   "the metric whose extremes downsampling keeps (default loss)")],
        "description": f"Rows with step > `after`, ascending. {NON_FINITE}.",
        "responses": {"200": _json("rows, ascending", {
            "type": "object", "required": ["kind", "rows", "next"],
            "properties": {"kind": STR, "rows": {"type": "array", "items": METRIC_ROW},
                           "next": INT}}),
            "304": {"description": "nothing written since the copy named by If-None-Match"},
            **_errors(400, 401, 404)},
    },
    ("get", "/api/v1/jobs/{job_id}/model"): {
        "summary": "The trained .keras file", "operationId": "download_model",
        "responses": {
            "200": {"description": "the file",
                    "content": {"application/octet-stream": {"schema": {
                        "type": "string", "format": "binary"}}}},
            "302": {"description": "a short-lived presigned link to the file (S3 stores)"},
            **_errors(401, 404)},
    },
    ("get", "/api/v1/jobs/{job_id}/detail"): {
        "summary": "A job with throughput, ETA, attempts timeline, checkpoints and summary",
        "operationId": "get_job_detail",
        "responses": {"200": _json("the job's detail", OBJ), **_errors(401, 404)},
    },
    ("get", "/api/v1/jobs/{job_id}/checkpoints/{step}/{name}"): {
        "summary": "One file of a committed checkpoint", "operationId": "download_checkpoint_file",
        "responses": {
            "200": {"description": "the file", "content": {"application/octet-stream": {
                "schema": {"type": "string", "format": "binary"}}}},
            **_errors(401, 404)},
    },
    ("get", "/api/v1/fleet"): {
        "summary": "Workers and queue depths", "operationId": "get_fleet",
        "responses": {"200": _json("the fleet", OBJ), **_errors(401)},
    },
    ("post", "/api/v1/data"): {
        "summary": "Upload an .npz of arrays into the store", "operationId": "upload_data",
        "requestBody": {"required": True, "content": {"application/octet-stream": {
            "schema": {"type": "string", "format": "binary"}}}},
        "responses": {"201": _json("where the data now is", {
            "type": "object", "required": ["url"], "properties": {"url": STR}}),
            **_errors(400, 401, 413)},
    },
    ("get", "/api/v1/healthz"): {
        "summary": "Liveness", "operationId": "get_health", "security": [],
        "responses": {"200": _json("alive", OBJ)},
    },
    ("get", "/api/v1/readyz"): {
        "summary": "Readiness", "operationId": "get_readiness", "security": [],
        "responses": {"200": _json("ready", OBJ), **_errors(503)},
    },
    ("get", "/api/v1/openapi.json"): {
        "summary": "This document", "operationId": "get_openapi", "security": [],
        "responses": {"200": _json("OpenAPI 3.1", OBJ)},
    },
}


def openapi_path(rule: str) -> str:
    """A Flask rule as an OpenAPI path: ``<job_id>`` and ``<int:n>`` become ``{name}``."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def document(app) -> dict:
    """The OpenAPI document for ``app``'s ``/api/v1`` routes."""
    paths: dict[str, dict] = {}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(PREFIX):
            continue
        path = openapi_path(rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            op = dict(OPERATIONS.get((method.lower(), path)) or _generic(method, path, rule))
            params = [{"name": a, "in": "path", "required": True, "schema": _converted(rule, a)}
                      for a in sorted(rule.arguments)]
            if params or op.get("parameters"):
                op["parameters"] = params + list(op.get("parameters", []))
            if path not in OPEN and "401" not in op["responses"] and "default" not in \
                    op["responses"]:
                op["responses"] = {**op["responses"], **_errors(401)}
            paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "fitfleet", "version": "1",
                 "description": "Keras fit as a service. Every /api/v1 route but the health "
                                "checks and this document needs 'Authorization: Bearer "
                                "<token>'; another project's job answers 404."},
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": SCHEMAS,
                       "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}},
    }


def _converted(rule, name: str) -> dict:
    """A path parameter's schema from its URL converter (``<int:step>`` is an integer)."""
    converter = getattr(rule, "_converters", {}).get(name)
    if type(converter).__name__ == "IntegerConverter":
        return {"type": "integer", "minimum": 0}
    return STR


def _generic(method: str, path: str, rule) -> dict:
    view = current_app.view_functions.get(rule.endpoint)
    text = (view.__doc__ or "").strip().splitlines()[0] if view and view.__doc__ else path
    return {"summary": text, "operationId": f"{rule.endpoint}_{method.lower()}",
            "responses": {"default": {"description": "see the API reference"}}}


@bp.get("/openapi.json")
def get_openapi():
    """The OpenAPI 3.1 document of this API."""
    return jsonify(document(current_app))
