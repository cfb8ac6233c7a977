"""What a dashboard's job page needs: one detailed view, and checkpoint files to download."""

from __future__ import annotations

import os
import tempfile

from flask import Blueprint, jsonify, send_file

from service.core.errors import NotFound
from service.storage import LocalStore, open_store
from service.store.detail import job_detail
from service.web.api import ctx
from service.web.auth import scope

bp = Blueprint("detail", __name__)


@bp.get("/jobs/<job_id>/detail")
def get_job_detail(job_id: str):
    """The job with throughput and ETA, attempts timeline, checkpoints and summary."""
    return jsonify(job_detail(ctx().jobs, job_id, project=scope()))


@bp.get("/jobs/<job_id>/checkpoints/<int:step>/<name>")
def download_checkpoint_file(job_id: str, step: int, name: str):
    """One file of a committed checkpoint (``model.keras`` opens with plain Keras)."""
    c = ctx()
    detail = job_detail(c.jobs, job_id, project=scope())
    found = [cp for cp in detail["checkpoints"] if cp["step"] == step]
    if not found or name not in (found[0]["files"] or {}):
        raise NotFound(
            f"job {job_id} has no checkpoint file {name!r} at step {step}",
            code="checkpoint_not_found",
        )
    store = open_store(found[0]["uri"])
    options = {
        "mimetype": "application/octet-stream",
        "as_attachment": True,
        "download_name": f"{job_id[:8]}-step{step}-{name}",
    }
    if isinstance(store, LocalStore):
        path = store.base / name
        if not path.is_file():
            raise NotFound(
                "the checkpoint file is missing from the store", code="checkpoint_missing"
            )
        return send_file(path, conditional=True, **options)
    fd, path = tempfile.mkstemp(prefix="fitfleet-ckpt-")
    os.close(fd)
    try:
        store.get_file(name, path)
        return send_file(open(path, "rb"), **options)  # send_file closes it
    finally:
        os.unlink(path)
