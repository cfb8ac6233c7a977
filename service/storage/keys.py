"""Object keys: where each job's checkpoints and trained model live inside a store."""

from __future__ import annotations

from service.core.errors import BadRequest
from service.storage.base import ObjectStore


def job_prefix(project: str, job_id: str) -> str:
    """``projects/<project>/jobs/<id>``: every object of one job, under its project."""
    return f"projects/{project}/jobs/{job_id}"


def checkpoint_prefix(project: str, job_id: str, step: int, attempt: int) -> str:
    """``projects/<p>/jobs/<id>/checkpoints/<global step, zero-padded>-a<attempt>``.

    The attempt number keeps a zombie attempt (one that lost its lease but still runs)
    from overwriting the objects of a checkpoint the live attempt saved at the same step.
    """
    return f"{job_prefix(project, job_id)}/checkpoints/{step:012d}-a{attempt}"


def key_of(store: ObjectStore, uri: str) -> str:
    """The key of ``uri`` inside ``store`` (the inverse of ``store.uri``)."""
    root = store.root.rstrip("/") + "/"
    if not uri.startswith(root):
        raise BadRequest("object is outside the store")
    return uri[len(root) :]


def final_model_key(project: str, job_id: str) -> str:
    """Where a finished job's trained model (a standard ``.keras`` file) is stored."""
    return f"{job_prefix(project, job_id)}/model.keras"
