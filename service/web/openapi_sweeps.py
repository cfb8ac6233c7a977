"""The OpenAPI operations of the sweep routes (merged into :mod:`service.web.openapi`)."""

from __future__ import annotations


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(description: str, schema: dict) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_TEXT = {
    400: "bad request",
    401: "no valid API token",
    404: "no such sweep in the caller's project",
    409: "the sweep has already ended",
    413: "the body is too large",
    422: "the sweep spec was refused: a space path the base spec lacks, an empty range, an "
    "objective the epoch logs never hold, max_parallel 0, or a range whose extremes make a "
    "job spec admission refuses (details.field names it)",
}


def _errors(*codes: int) -> dict:
    return {str(c): _json(_TEXT[c], _ref("Error")) for c in codes}


def _query(name: str, schema: dict, text: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": text}


OPERATIONS = {
    ("post", "/api/v1/sweeps"): {
        "summary": "Start a sweep: trials of a base job spec with sampled values",
        "operationId": "create_sweep",
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _ref("SweepSpec")}},
        },
        "responses": {
            "201": _json("the sweep, with its first trials queued", _ref("Sweep")),
            **_errors(400, 401, 413, 422),
        },
    },
    ("get", "/api/v1/sweeps"): {
        "summary": "List sweeps, newest first",
        "operationId": "list_sweeps",
        "parameters": [
            _query("state", {"enum": ["running", "finished", "cancelled"]}, "only this state"),
            _query("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "page size"),
            _query("cursor", {"type": "string"}, "the next cursor of the previous page"),
        ],
        "responses": {"200": _json("a page of sweeps", _ref("SweepList")), **_errors(400, 401)},
    },
    ("get", "/api/v1/sweeps/{sweep_id}"): {
        "summary": "A sweep: its trials with parameters, state and objective, and the best",
        "operationId": "get_sweep",
        "responses": {"200": _json("the sweep", _ref("Sweep")), **_errors(401, 404)},
    },
    ("post", "/api/v1/sweeps/{sweep_id}/cancel"): {
        "summary": "Cancel a sweep: no new trials; its running trials are cancelled",
        "operationId": "cancel_sweep",
        "responses": {
            "202": _json("the sweep, cancelled", _ref("Sweep")),
            **_errors(401, 404, 409),
        },
    },
}
