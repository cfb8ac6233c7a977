"""The Flask app factory: settings in, an app with the API blueprints out."""

from __future__ import annotations

import logging

from flask import Flask

from service.core.config import Settings, get_settings
from service.store.jobs import JobStore
from service.store.metrics import MetricStore
from service.web.api import ApiContext
from service.web.errors import register_error_handlers


def create_app(settings: Settings | None = None) -> Flask:
    """A Flask app serving the v1 API for ``settings`` (default: from the environment)."""
    from service.web import dashboard, openapi
    from service.web.api import (
        data,
        detail,
        events,
        fleet,
        health,
        jobs,
        projects,
        prometheus,
        results,
        sweeps,
        tensorboard,
        webhooks,
    )
    from service.web.auth import register_auth

    settings = settings or get_settings()
    app = Flask(__name__)
    app.config.update(
        FITFLEET_SETTINGS=settings,
        MAX_CONTENT_LENGTH=settings.max_spec_bytes,
    )
    app.json.sort_keys = False
    app.extensions["fitfleet"] = ApiContext(
        settings=settings,
        jobs=JobStore(settings.database_url),
        metrics=MetricStore(settings.database_url),
    )
    app.register_blueprint(jobs.bp, url_prefix="/api/v1")
    app.register_blueprint(sweeps.bp, url_prefix="/api/v1")
    app.register_blueprint(results.bp, url_prefix="/api/v1")
    app.register_blueprint(data.bp, url_prefix="/api/v1")  # POST /data: uploads
    app.register_blueprint(detail.bp, url_prefix="/api/v1")
    app.register_blueprint(events.bp, url_prefix="/api/v1")
    app.register_blueprint(fleet.bp, url_prefix="/api/v1")
    app.register_blueprint(projects.bp, url_prefix="/api/v1")
    app.register_blueprint(tensorboard.bp, url_prefix="/api/v1")
    app.register_blueprint(webhooks.bp, url_prefix="/api/v1")
    app.register_blueprint(dashboard.bp)  # the web pages at /
    app.register_blueprint(health.bp, url_prefix="/api/v1")
    app.register_blueprint(health.bp, name="health_root")
    app.register_blueprint(prometheus.bp)  # GET /metrics
    app.register_blueprint(openapi.bp, url_prefix="/api/v1")
    register_auth(app, settings)
    register_error_handlers(app)
    logging.getLogger("service").setLevel(settings.log_level.upper())
    return app
