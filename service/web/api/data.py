"""Data uploads: a client's local arrays as an ``.npz`` stored under ``uploads/`` in the store."""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile

from flask import Blueprint, jsonify, request

from service.core.errors import BadRequest, PayloadTooLarge
from service.storage import open_store
from service.web.api import ctx

bp = Blueprint("data", __name__)
CHUNK = 1 << 20


@bp.post("/data")
def upload_data():
    """Store the request body (an ``.npz``) by its SHA-256; ``201`` with its URL.

    The same bytes uploaded twice are stored once and keep one URL, so the workers'
    download cache (keyed by the object's ETag) serves a repeated upload from disk.
    """
    c = ctx()
    limit = c.settings.max_upload_bytes
    length = request.content_length
    if length is None:
        raise BadRequest(
            "send the .npz as the request body, with a Content-Length header",
            code="length_required",
        )
    if length > limit:
        raise PayloadTooLarge(
            f"the upload is {length} bytes; the limit is {limit} bytes (FITFLEET_MAX_UPLOAD_BYTES)",
            details={"limit": limit},
        )
    request.max_content_length = limit  # this route's own limit, not the job spec's
    fd, path = tempfile.mkstemp(prefix="fitfleet-upload-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as out:
            digest, size = _copy(request.stream, out, length)
        arrays = _npz_arrays(path)
        store = open_store(c.settings.storage_url)
        key = f"uploads/{digest}.npz"
        if not store.exists(key):
            store.put_file(key, path)
    finally:
        os.unlink(path)
    response = jsonify({"url": store.uri(key), "bytes": size, "sha256": digest, "arrays": arrays})
    response.status_code = 201
    return response


def _copy(stream, out, length: int) -> tuple[str, int]:
    """Copy ``length`` bytes to ``out``; their SHA-256 and count (400 if the body is short)."""
    h, size = hashlib.sha256(), 0
    while size < length:
        chunk = stream.read(min(CHUNK, length - size))
        if not chunk:
            break
        h.update(chunk)
        out.write(chunk)
        size += len(chunk)
    if size != length:
        raise BadRequest(f"the body ended after {size} of {length} bytes", code="bad_upload")
    return h.hexdigest(), size


def _npz_arrays(path: str) -> list[str]:
    """The array names of an ``.npz``; 400 ``bad_upload`` for anything else."""
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError) as exc:
        raise BadRequest("the upload is not an .npz file (numpy.savez)", code="bad_upload") from exc
    if bad is not None or not names or not all(n.endswith(".npy") for n in names):
        raise BadRequest(
            "the upload is not an .npz file of arrays (numpy.savez)", code="bad_upload"
        )
    return [n[:-4] for n in names]
