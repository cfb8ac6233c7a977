"""One exception hierarchy: each class carries an error code and an HTTP status."""

from __future__ import annotations


class FitfleetError(Exception):
    """Base error; ``message`` is safe to show a client (no secrets, SQL or paths)."""

    code = "internal_error"
    status = 500

    def __init__(self, message: str, details: object = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.details = details
        if code:
            self.code = code

    def envelope(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class BadRequest(FitfleetError):
    code, status = "bad_request", 400


class InvalidSpec(FitfleetError):
    code, status = "invalid_spec", 422


class Unauthorized(FitfleetError):
    code, status = "unauthorized", 401


class Forbidden(FitfleetError):
    code, status = "forbidden", 403


class NotFound(FitfleetError):
    code, status = "not_found", 404


class Conflict(FitfleetError):
    code, status = "conflict", 409


class PayloadTooLarge(FitfleetError):
    code, status = "payload_too_large", 413


class Unavailable(FitfleetError):
    code, status = "unavailable", 503


class StorageError(FitfleetError):
    code, status = "storage_error", 502


class LeaseLost(FitfleetError):
    """A worker's attempt is no longer the job's current one (fencing refused a write)."""

    code, status = "lease_lost", 409
