"""The OpenAPI 3.1 document of the v1 API, built from the app's real routes.

Every ``/api/v1`` rule of the URL map appears, with each of its methods; the routes
described below get their parameters and answer schemas, any other gets a generic entry,
so the document never lists a route that does not exist or misses one that does.
"""

from __future__ import annotations

import re

from flask import Blueprint, current_app, jsonify

from service.store.tables import STATES
from service.web.auth import OPEN_ENDPOINTS
from service.web.openapi_sweeps import OPERATIONS as SWEEP_OPERATIONS
from service.web.schemas import components

bp = Blueprint("openapi", __name__)
PREFIX = "/api/v1"


STR = {"type": "string"}
EVENT_DATA = (
    "submitted {name, queue, priority, max_attempts}; queued {reason: why it waits, "
    "when known}; claimed {worker, host, gpus}; restored {step, checkpoint, bytes, "
    "fetch_seconds, load_seconds}; checkpoint_skipped {step, reason} (damaged: the one before "
    "is used); first_batch {step, seconds since the claim}; checkpoint {step, bytes, "
    "blocked_seconds (the training thread), background_seconds}; validated {epoch, seconds}; "
    "lease_lost {code, message}; preempted {reason}; released {step}; requeued {after: lost or "
    "released}; cancelled {while: the state it was in}; finished {state, error_code, "
    "error_message}."
)
CURSOR = "items with a larger id: the `next` of the previous page (default 0, from the start)"
NON_FINITE = (
    'NaN, inf and -inf, which JSON cannot hold, are the strings "NaN", "Infinity" and "-Infinity"'
)


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(description: str, schema: dict) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict:
    text = {
        400: "bad request",
        401: "no valid API token",
        403: "the token may not do this (an admin token is needed)",
        404: "no such job in the caller's project",
        409: "the job has already ended",
        413: "the body is too large",
        422: "the spec was refused (field, limit or rule named; "
        "code data_not_found: a data location that does not exist)",
        503: "unavailable",
    }
    return {str(c): _json(text[c], _ref("Error")) for c in codes}


def _query(name: str, schema: dict, text: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": text}


WEBHOOKS = (
    "Each matching job event is POSTed once per hook (retried with backoff until a 2xx) "
    "as JSON {id, type, event, at, project, job_id, attempt, state, data} with headers "
    "Fitfleet-Event-Id (de-duplicate by it), Fitfleet-Timestamp (Unix seconds) and "
    'Fitfleet-Signature: "sha256=" + hex HMAC-SHA256(secret, "<timestamp>.<body>"); see '
    "docs/WEBHOOKS.md. The URL may not be the metadata service, nor a private, loopback or "
    "link-local address unless the operator set FITFLEET_WEBHOOK_PRIVATE=on."
)


OPERATIONS = {
    ("post", "/api/v1/jobs"): {
        "summary": "Submit a job",
        "operationId": "create_job",
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _ref("JobSpec")}},
        },
        "responses": {
            "201": _json("the job, queued", _ref("Job")),
            **_errors(400, 401, 413, 422, 503),
        },
    },
    ("get", "/api/v1/jobs"): {
        "summary": "List jobs, newest first",
        "operationId": "list_jobs",
        "parameters": [
            _query("state", {"enum": list(STATES)}, "only jobs in this state"),
            _query("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "page size"),
            _query("cursor", STR, "the next cursor of the previous page"),
        ],
        "responses": {"200": _json("a page of jobs", _ref("JobList")), **_errors(400, 401)},
    },
    ("get", "/api/v1/jobs/{job_id}"): {
        "summary": "A job",
        "operationId": "get_job",
        "responses": {"200": _json("the job", _ref("Job")), **_errors(401, 404)},
    },
    ("post", "/api/v1/jobs/{job_id}/cancel"): {
        "summary": "Cancel a job",
        "operationId": "cancel_job",
        "responses": {
            "202": _json("the job, cancelled or stopping", _ref("Job")),
            **_errors(401, 404, 409),
        },
    },
    ("get", "/api/v1/jobs/{job_id}/attempts"): {
        "summary": "A job's attempts",
        "operationId": "list_attempts",
        "responses": {
            "200": _json("attempts, oldest first", _ref("AttemptList")),
            **_errors(401, 404),
        },
    },
    ("get", "/api/v1/jobs/{job_id}/checkpoints"): {
        "summary": "A job's committed checkpoints",
        "operationId": "list_checkpoints",
        "responses": {
            "200": _json("checkpoints, oldest first", _ref("CheckpointList")),
            **_errors(401, 404),
        },
    },
    ("get", "/api/v1/jobs/{job_id}/summary"): {
        "summary": "The Keras model summary",
        "operationId": "get_summary",
        "responses": {
            "200": _json("layers and parameter counts", _ref("Summary")),
            **_errors(401, 404),
        },
    },
    ("get", "/api/v1/jobs/{job_id}/metrics"): {
        "summary": "Metric rows after a step",
        "operationId": "get_metrics",
        "parameters": [
            _query(
                "kind",
                {"enum": ["batch", "epoch", "system"]},
                "batch or epoch rows, or system: the training process's CPU, memory and "
                "GPUs, sampled every FITFLEET_SYSTEM_METRICS_SECONDS at the step it had reached",
            ),
            _query(
                "after",
                {"type": "integer", "minimum": -1, "maximum": 2**63 - 1},
                "rows with a larger step",
            ),
            _query(
                "max_points",
                {"type": "integer", "minimum": 1, "maximum": 100000},
                "downsample to at most this many rows: the last one and each bucket's "
                "minimum and maximum of `metric` (ordered -inf < numbers < inf < NaN)",
            ),
            _query(
                "metric",
                {"type": "string", "pattern": "^[A-Za-z0-9_./-]{1,100}$"},
                "the metric whose extremes downsampling keeps (default loss)",
            ),
        ],
        "description": f"Rows with step > `after`, ascending. {NON_FINITE}.",
        "responses": {
            "200": _json("rows, ascending", _ref("MetricsPage")),
            "304": {"description": "nothing written since the copy named by If-None-Match"},
            **_errors(400, 401, 404),
        },
    },
    ("get", "/api/v1/jobs/{job_id}/model"): {
        "summary": "The trained .keras file",
        "operationId": "download_model",
        "responses": {
            "200": {
                "description": "the file",
                "content": {
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
                },
            },
            "302": {"description": "a short-lived presigned link to the file (S3 stores)"},
            **_errors(401, 404),
        },
    },
    ("get", "/api/v1/jobs/{job_id}/tensorboard"): {
        "summary": "The job's metrics as TensorBoard event files",
        "description": "A .tar.gz of train/ (batch_<metric> at each global step, "
        "epoch_<metric> at each 0-based epoch) and validation/ (the val_ metrics as "
        "epoch_<metric>), as Keras's TensorBoard callback lays them out; unpack it and run "
        "`tensorboard --logdir DIR`. One value per step, a resumed job included.",
        "operationId": "download_tensorboard",
        "responses": {
            "200": {
                "description": "the archive",
                "content": {"application/gzip": {"schema": {"type": "string", "format": "binary"}}},
            },
            **_errors(401, 404),
        },
    },
    ("get", "/api/v1/jobs/{job_id}/detail"): {
        "summary": "A job with throughput, ETA, attempts timeline, checkpoints, summary and "
        "goodput",
        "operationId": "get_job_detail",
        "responses": {"200": _json("the job's detail", _ref("Detail")), **_errors(401, 404)},
    },
    ("get", "/api/v1/jobs/{job_id}/events"): {
        "summary": "A job's event timeline after a cursor",
        "operationId": "list_job_events",
        "parameters": [
            _query("after", {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}, CURSOR),
            _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "page size"),
        ],
        "description": "Events with id > `after`, oldest first; each is appended in the "
        "transaction of the change it describes. Poll with `next`. Their `data` by type: "
        + EVENT_DATA,
        "responses": {
            "200": _json("events, oldest first", _ref("EventsPage")),
            **_errors(400, 401, 404),
        },
    },
    ("get", "/api/v1/jobs/{job_id}/logs"): {
        "summary": "The log lines a job's workers wrote (warnings and errors)",
        "operationId": "list_worker_logs",
        "parameters": [
            _query("attempt", {"type": "integer", "minimum": 1}, "only this attempt's lines"),
            _query("after", {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}, CURSOR),
            _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "page size"),
        ],
        "description": "Lines with id > `after`, oldest first: warnings and errors a worker "
        "logged while an attempt held the job, with Keras's or TensorFlow's own message of a "
        "failure; scrubbed of secrets and server paths; at most 1000 lines and 256 KiB an "
        "attempt (a last line counts those dropped).",
        "responses": {
            "200": _json("lines, oldest first", _ref("LogsPage")),
            **_errors(400, 401, 404),
        },
    },
    ("get", "/api/v1/jobs/{job_id}/checkpoints/{step}/{name}"): {
        "summary": "One file of a committed checkpoint",
        "operationId": "download_checkpoint_file",
        "responses": {
            "200": {
                "description": "the file",
                "content": {
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
                },
            },
            **_errors(401, 404),
        },
    },
    ("post", "/api/v1/webhooks"): {
        "summary": "Register a webhook (admin token)",
        "operationId": "create_webhook",
        "description": WEBHOOKS,
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _ref("WebhookRequest")}},
        },
        "responses": {
            "201": _json("the hook, with its signing secret (shown once)", _ref("WebhookCreated")),
            "403": _json("not an admin token", _ref("Error")),
            **_errors(400, 401, 422),
        },
    },
    ("get", "/api/v1/webhooks"): {
        "summary": "List webhooks (admin token)",
        "operationId": "list_webhooks",
        "parameters": [_query("project", STR, "only this project's hooks")],
        "responses": {
            "200": _json("hooks, oldest first", _ref("WebhookList")),
            "403": _json("not an admin token", _ref("Error")),
            **_errors(400, 401),
        },
    },
    ("delete", "/api/v1/webhooks/{hook_id}"): {
        "summary": "Delete a webhook and its delivery log (admin token)",
        "operationId": "delete_webhook",
        "responses": {
            "204": {"description": "deleted"},
            "403": _json("not an admin token", _ref("Error")),
            **_errors(401, 404),
        },
    },
    ("get", "/api/v1/webhooks/{hook_id}/deliveries"): {
        "summary": "A webhook's delivery log (admin token)",
        "operationId": "list_webhook_deliveries",
        "parameters": [_query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "rows")],
        "responses": {
            "200": _json("deliveries, newest first", _ref("WebhookDeliveryList")),
            "403": _json("not an admin token", _ref("Error")),
            **_errors(400, 401, 404),
        },
    },
    ("get", "/api/v1/fleet"): {
        "summary": "Workers and queue depths",
        "operationId": "get_fleet",
        "responses": {"200": _json("the fleet", _ref("Fleet")), **_errors(401)},
    },
    ("get", "/api/v1/projects"): {
        "summary": "Projects: fair-share weight, quotas and use of the fleet",
        "operationId": "list_projects",
        "description": "Each project with settings or an active job; a project's token sees "
        "its own project only. A project with no settings has weight 1 and no limits.",
        "responses": {"200": _json("the projects", _ref("ProjectList")), **_errors(401)},
    },
    ("get", "/api/v1/projects/{name}"): {
        "summary": "One project's weight, quotas and use of the fleet",
        "operationId": "get_project",
        "responses": {
            "200": _json("the project", _ref("Project")),
            **_errors(400, 401, 404),
        },
    },
    ("put", "/api/v1/projects/{name}"): {
        "summary": "Set a project's fair-share weight and quotas (admin tokens)",
        "operationId": "set_project",
        "description": "Fields not sent keep their value; `null` removes a quota. The "
        "scheduler uses the new values at its next decision.",
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _ref("ProjectSettings")}},
        },
        "responses": {
            "200": _json("the project as now set", _ref("Project")),
            **_errors(400, 401, 403),
        },
    },
    ("post", "/api/v1/data"): {
        "summary": "Upload an .npz of arrays into the store",
        "operationId": "upload_data",
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        },
        "responses": {
            "201": _json("where the data now is", _ref("Upload")),
            **_errors(400, 401, 413),
        },
    },
    ("get", "/api/v1/healthz"): {
        "summary": "Liveness",
        "operationId": "get_health",
        "security": [],
        "responses": {"200": _json("alive", _ref("Health"))},
    },
    ("get", "/api/v1/readyz"): {
        "summary": "Readiness",
        "operationId": "get_readiness",
        "security": [],
        "responses": {"200": _json("ready", _ref("Health")), **_errors(503)},
    },
    ("get", "/api/v1/openapi.json"): {
        "summary": "This document",
        "operationId": "get_openapi",
        "security": [],
        "responses": {"200": _json("OpenAPI 3.1", {"type": "object"})},
    },
    **SWEEP_OPERATIONS,
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
            params = [
                {"name": a, "in": "path", "required": True, "schema": _converted(rule, a)}
                for a in sorted(rule.arguments)
            ]
            if params or op.get("parameters"):
                op["parameters"] = params + list(op.get("parameters", []))
            if (
                rule.endpoint not in OPEN_ENDPOINTS  # the ones auth lets through
                and "401" not in op["responses"]
                and "default" not in op["responses"]
            ):
                op["responses"] = {**op["responses"], **_errors(401)}
            paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "fitfleet",
            "version": "1",
            "description": "Keras fit as a service. Every /api/v1 route but the health "
            "checks and this document needs 'Authorization: Bearer "
            "<token>'; another project's job answers 404.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": components(),
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
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
    return {
        "summary": text,
        "operationId": f"{rule.endpoint}_{method.lower()}",
        "responses": {"default": {"description": "see the API reference"}},
    }


@bp.get("/openapi.json")
def get_openapi():
    """The OpenAPI 3.1 document of this API."""
    return jsonify(document(current_app))
