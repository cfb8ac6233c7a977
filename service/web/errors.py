"""The one place that turns errors into the JSON envelope: ``{"error": {code, message, details}}``."""

from __future__ import annotations

import logging

from flask import Flask, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from service.core.errors import FitfleetError

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def envelope(status: int, code: str, message: str, details: object = None, headers=None):
    """A Flask response carrying the error envelope."""
    response = jsonify({"error": {"code": code, "message": message, "details": details}})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def register_error_handlers(app: Flask) -> None:
    """Install the handlers for project errors, HTTP errors and anything unexpected."""
    app.register_error_handler(FitfleetError, _project_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)


def _project_error(exc: FitfleetError):
    if exc.status >= 500:
        log.warning(
            "%s %s -> %s: %s",
            request.method,
            request.path,
            exc.code,
            exc.message,
            exc_info=exc.__cause__ is not None,
        )
    return envelope(exc.status, exc.code, exc.message, exc.details)


def _http_error(exc: HTTPException):
    status = exc.code or 500
    code = _HTTP_CODES.get(status) or (exc.name or "error").lower().replace(" ", "_")
    headers = {}
    if status == 404:
        message = f"no such endpoint: {request.method} {request.path}"
    elif status == 405:
        allowed = exc.valid_methods if hasattr(exc, "valid_methods") else None
        message = f"{request.method} is not allowed on {request.path}"
        if allowed:
            headers["Allow"] = ", ".join(sorted(allowed))
    elif status == 413:
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        message = f"the request body is larger than the limit of {limit} bytes"
    else:
        message = exc.description or exc.name
    return envelope(status, code, message, None, headers)


def _unexpected_error(exc: Exception):
    log.exception("unhandled error on %s %s", request.method, request.path)
    return envelope(500, "internal_error", "an internal error occurred; see the server log")
