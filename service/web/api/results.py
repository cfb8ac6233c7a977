"""What training produces: a job's metric rows for dashboards and its final model file."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile

from flask import Blueprint, current_app, redirect, request, send_file

from service.core.errors import NotFound
from service.storage import LocalStore, S3Store, final_model_key, open_store
from service.store.metrics import KINDS
from service.web.api import choice_arg, ctx, int_arg
from service.web.auth import scope
from service.web.pollcache import PollCache

MAX_STEP = 2**63 - 1  # steps are BIGINT on PostgreSQL

bp = Blueprint("results", __name__)
POLLS = PollCache()


@bp.get("/jobs/<job_id>/metrics")
def get_metrics(job_id: str):
    """Rows with step > ``after``, ascending; ``next`` is the ``after`` of the next poll."""
    c = ctx()
    kind = choice_arg("kind", KINDS, "epoch")
    after = int_arg("after", None, lo=-1, hi=MAX_STEP)
    max_points = int_arg("max_points", None, lo=1, hi=100_000)
    metric = request.args.get("metric") or "loss"
    # One query: 404 for an unknown job or another project's, else the series version.
    version = c.metrics.version(job_id, kind, project=scope())
    etag = _metrics_etag(version, request.query_string)
    if request.if_none_match.contains(etag):  # nothing written since the caller's copy
        return _not_modified(etag)

    def compute() -> bytes:
        answer = c.metrics.read(job_id, kind, after=after, max_points=max_points, metric=metric)
        return current_app.json.dumps(answer).encode() + b"\n"

    # Pollers asking the same question share one answer per series version.
    etag, body = POLLS.answer((job_id, request.query_string), etag, compute)
    if request.if_none_match.contains(etag):
        return _not_modified(etag)
    response = current_app.response_class(body, mimetype="application/json")
    response.set_etag(etag)
    response.headers["Cache-Control"] = "no-cache"
    return response


def _not_modified(etag: str):
    response = current_app.response_class(status=304)
    response.set_etag(etag)
    response.headers["Cache-Control"] = "no-cache"
    return response


def _metrics_etag(version: int, query: bytes) -> str:
    """Changes with every write to the series and with the question asked."""
    return hashlib.sha1(b"%d?" % version + query).hexdigest()[:20]


@bp.get("/jobs/<job_id>/model")
def download_model(job_id: str):
    """The trained model as a ``.keras`` file; 404 ``model_not_ready`` until it exists."""
    c = ctx()
    job = c.jobs.get(job_id, project=scope())
    if not job.get("model_available"):
        raise NotFound(
            f"job {job_id} has no trained model yet (state: {job['state']})", code="model_not_ready"
        )
    store = open_store(c.settings.storage_url)
    key = final_model_key(job["project"], job_id)
    name = f"{_safe_filename(job['name'])}.keras"
    options = {"mimetype": "application/octet-stream", "as_attachment": True, "download_name": name}
    if isinstance(store, LocalStore):
        path = store.base / key
        if not path.is_file():
            raise NotFound(
                f"the model file of job {job_id} is missing from the store", code="model_missing"
            )
        return send_file(path, conditional=True, **options)
    if isinstance(store, S3Store):  # a short-lived link straight to the store
        if not store.exists(key):
            raise NotFound(
                f"the model file of job {job_id} is missing from the store", code="model_missing"
            )
        return redirect(store.presigned_url(key, c.settings.presign_seconds, name), code=302)
    return send_file(_spooled(store, key), **options)


def _spooled(store, key: str):
    """The object in a temporary file already unlinked, open for reading (streams, any size)."""
    fd, path = tempfile.mkstemp(prefix="fitfleet-model-", suffix=".keras")
    os.close(fd)
    try:
        store.get_file(key, path)
        return open(path, "rb")  # send_file closes it after streaming
    except NotFound as exc:
        raise NotFound(
            "the model file of this job is missing from the store", code="model_missing"
        ) from exc
    finally:
        os.unlink(path)


def _safe_filename(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._")
    return cleaned[:100] or "model"
