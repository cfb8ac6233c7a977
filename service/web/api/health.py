"""Liveness and readiness: is the process up; can it reach the database, broker and store."""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify
from sqlalchemy import text

from service.core.config import Settings
from service.core.errors import FitfleetError
from service.store import migrate
from service.store.db import get_engine
from service.web.api import ctx
from service.web.errors import envelope

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)


@bp.get("/healthz")
def get_health():
    """Always 200 while the process serves requests."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def get_readiness():
    """200 when the database (at the head schema), broker and store answer; 503 otherwise."""
    settings = ctx().settings
    checks = {}
    for name, check in (("database", _database), ("broker", _broker), ("store", _store)):
        try:
            check(settings)
            checks[name] = "ok"
        except Exception as exc:  # each dependency fails in its own way
            log.warning("readiness check %s failed", name, exc_info=True)
            checks[name] = (
                exc.message
                if isinstance(exc, FitfleetError)
                else (f"unreachable ({exc.__class__.__name__})")
            )
    failed = [name for name, result in checks.items() if result != "ok"]
    if failed:
        return envelope(
            503, "not_ready", f"not ready: {', '.join(failed)} failed", {"checks": checks}
        )
    return jsonify({"status": "ok", "checks": checks})


def _database(settings: Settings) -> None:
    with get_engine(settings.database_url).connect() as conn:
        conn.execute(text("SELECT 1"))
    migrate.check(settings.database_url)


def _broker(settings: Settings) -> None:
    from kombu import Connection

    from service.core.celery_config import celery_config

    options = celery_config(settings.broker_url, settings.home).get("broker_transport_options")
    with Connection(
        settings.broker_url, connect_timeout=2, transport_options=options or {}
    ) as conn:
        conn.ensure_connection(
            max_retries=1, interval_start=0, interval_step=0.2, interval_max=0.5, timeout=3
        )


def _store(settings: Settings) -> None:
    from service.storage import open_store

    open_store(settings.storage_url).list("jobs/.readyz")
