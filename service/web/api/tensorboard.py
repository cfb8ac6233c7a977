"""A job's metrics as TensorBoard event files, downloaded as one ``.tar.gz``."""

from __future__ import annotations

from flask import Blueprint, send_file

from service.store.tensorboard import archive
from service.web.api import ctx
from service.web.api.results import _safe_filename
from service.web.auth import scope

bp = Blueprint("tensorboard", __name__)


@bp.get("/jobs/<job_id>/tensorboard")
def download_tensorboard(job_id: str):
    """``train/`` and ``validation/`` event files; unpack and run ``tensorboard --logdir``."""
    c = ctx()
    job = c.jobs.get(job_id, project=scope())  # 404 for an unknown job or another project's
    return send_file(
        archive(c.metrics, job_id, project=scope()),
        mimetype="application/gzip",
        as_attachment=True,
        download_name=f"{_safe_filename(job['name'])}-tensorboard.tar.gz",
    )
