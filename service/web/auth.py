"""Bearer-token authentication of every route but a declared few that hold no data.

It fails closed: a route needs a token unless its endpoint is in :data:`OPEN_ENDPOINTS`
(liveness, readiness, the API document, the Prometheus scrape of fleet-wide counts, and
the dashboard's static page shells, whose scripts call the API with a token), and
:func:`caller` refuses to answer when the token check did not set an identity.
"""

from __future__ import annotations

import logging

from flask import Flask, g, request

from service.core.config import Settings
from service.core.errors import Unauthorized
from service.store.tokens import Identity, TokenStore

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
OPEN_ENDPOINTS = frozenset(
    {
        "health.get_health",
        "health.get_readiness",
        "health_root.get_health",
        "health_root.get_readiness",
        "openapi.get_openapi",
        "prometheus.get_metrics",
        "dashboard.show_jobs",
        "dashboard.show_job",
        "dashboard.show_fleet",
        "dashboard.show_compare",
        "dashboard.show_sweeps",
        "dashboard.show_sweep",
        "dashboard.plotly_js",
        "dashboard.static",
        "static",
    }
)
OPEN_IDENTITY = Identity(token_id=None, project="default", is_admin=True)  # FITFLEET_AUTH=off


def register_auth(app: Flask, settings: Settings) -> None:
    """Install the token check; with ``FITFLEET_AUTH=off`` every caller is an admin."""
    if settings.auth.strip().lower() == "off":
        log.warning(
            "authentication is OFF (FITFLEET_AUTH=off): anyone who reaches this API "
            "can read and submit jobs of every project"
        )
        app.before_request(_open)
        return
    if settings.auth.strip().lower() != "on":
        raise ValueError(f"FITFLEET_AUTH must be 'on' or 'off', got {settings.auth!r}")
    tokens = TokenStore(settings.database_url)

    def authenticate():
        if request.method != "OPTIONS" and _guarded():
            g.identity = _identity(tokens)

    app.before_request(authenticate)
    app.after_request(_challenge)


def caller() -> Identity:
    """The identity of the current request, set by the token check (or ``FITFLEET_AUTH=off``).

    Raises Unauthorized when none was set: a handler never acts for a default identity.
    """
    identity = g.get("identity")
    if not isinstance(identity, Identity):
        raise _unauthorized(
            "this endpoint needs an API token: send 'Authorization: Bearer <token>'"
        )
    return identity


def scope() -> str | None:
    """The project the caller may see; None for an admin."""
    return caller().scope


def _challenge(response):
    if response.status_code == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="fitfleet"'
    return response


def _open():
    g.identity = OPEN_IDENTITY


def _guarded() -> bool:
    """Every matched route but the open ones; an unmatched path only under ``/api/v1``."""
    if request.url_rule is not None:
        return request.endpoint not in OPEN_ENDPOINTS
    path = request.path
    return path == API_PREFIX or path.startswith(API_PREFIX + "/")


def _identity(tokens: TokenStore) -> Identity:
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.strip().partition(" ")
    if not header:
        raise _unauthorized(
            "this endpoint needs an API token: send "
            "'Authorization: Bearer <token>' (create one with "
            "`fitfleet token create --project NAME`)"
        )
    if scheme.lower() != "bearer" or not secret.strip():
        raise _unauthorized("the Authorization header must be 'Bearer <token>'")
    identity = tokens.verify(secret.strip())
    if identity is None:
        raise _unauthorized("the API token is not valid or has been revoked")
    return identity


def _unauthorized(message: str) -> Unauthorized:
    return Unauthorized(message, details={"scheme": "Bearer"})
