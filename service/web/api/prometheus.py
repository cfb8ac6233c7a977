"""``GET /metrics`` in Prometheus text format, and the timing of every API request."""

from __future__ import annotations

import time

from flask import Blueprint, Response, current_app, g, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.ops.prometheus import REQUEST_SECONDS, make_registry
from service.web.api import ctx

bp = Blueprint("prometheus", __name__)


@bp.get("/metrics")
def get_metrics():
    """Fleet figures (queues, jobs, lost attempts) and request latency, for a scraper."""
    registry = current_app.extensions.get("fitfleet_prometheus")
    if registry is None:
        registry = make_registry(ctx().settings)
        current_app.extensions["fitfleet_prometheus"] = registry
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


@bp.before_app_request
def _start_timer() -> None:
    g.fitfleet_started = time.perf_counter()


@bp.after_app_request
def _observe(response):
    started = g.pop("fitfleet_started", None)
    if started is not None and request.endpoint != "prometheus.get_metrics":
        route = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
        REQUEST_SECONDS.labels(request.method, route, str(response.status_code)).observe(
            time.perf_counter() - started
        )
    return response
