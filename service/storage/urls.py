"""Store URLs: ``s3://bucket/prefix`` or ``file:///dir`` choose the implementation."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from service.core.errors import BadRequest
from service.storage.base import ObjectStore
from service.storage.local import LocalStore
from service.storage.s3 import S3Store


def open_store(url: str) -> ObjectStore:
    """The store for a ``s3://bucket/prefix`` or ``file:///dir`` URL."""
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise BadRequest("an s3:// URL needs a bucket")
        return S3Store(parsed.netloc, parsed.path)
    if parsed.scheme == "file":
        return LocalStore(unquote(parsed.path))
    raise BadRequest(f"unsupported storage URL scheme {parsed.scheme!r}; use s3:// or file://")


def split_object_url(url: str) -> tuple[ObjectStore, str]:
    """A data location URL as (store of its parent, key of the object)."""
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        key = parsed.path.lstrip("/")
        if not parsed.netloc or not key:
            raise BadRequest(f"{url!r} does not name an object (s3://bucket/key)")
        return S3Store(parsed.netloc), key
    if parsed.scheme == "file":
        path = Path(unquote(parsed.path))
        return LocalStore(path.parent), path.name
    raise BadRequest(f"unsupported data URL scheme {parsed.scheme!r}; use s3:// or file://")
