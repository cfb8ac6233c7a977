"""The machine's download cache of data objects, keyed by URL and ETag, trimmed LRU-first."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

from service.core.errors import InvalidSpec, NotFound
from service.storage import split_object_url

log = logging.getLogger("fitfleet.worker")


def cache_dir(home: str | os.PathLike, max_bytes: int = 0) -> Path:
    """The machine's data cache, kept across attempts: ``<home>/cache/data``.

    Past ``max_bytes`` (0: no limit), the least recently used downloads are deleted first.
    """
    path = Path(home) / "cache" / "data"
    path.mkdir(parents=True, exist_ok=True)
    if max_bytes:
        trim(path, max_bytes)
    return path


def trim(cache: Path, max_bytes: int) -> int:
    """Delete the least recently used cached objects until ``cache`` holds ``max_bytes``."""
    entries = []
    for p in cache.iterdir():
        if p.is_file() and not p.name.startswith(".") and not p.name.endswith(".rows.json"):
            try:
                stat = p.stat()
            except FileNotFoundError:  # another worker trimmed it meanwhile
                continue
            entries.append((stat.st_mtime, stat.st_size, p))
    total, removed = sum(e[1] for e in entries), 0
    for _, size, p in sorted(entries):
        if total <= max_bytes:
            break
        for victim in (p, p.with_name(p.name + ".rows.json")):
            victim.unlink(missing_ok=True)
        total, removed = total - size, removed + 1
    return removed


def fetch(url: str, cache: str | os.PathLike, tag: str | None = None) -> Path:
    """A local path holding the object at ``url``: in place for ``file://``, else cached.

    An S3 object is downloaded once per machine: the cache file's name holds its ETag, so
    a resumed attempt on the same machine reads it from disk, and a changed object is
    fetched again.

    Args:
        url: ``s3://`` or ``file://`` URL of one object.
        cache: the cache folder (see :func:`cache_dir`).
        tag: the object's ETag when already known (from a listing); asked for otherwise.
    """
    parsed = urlparse(url)
    if parsed.scheme == "file":
        path = Path(unquote(parsed.path))
        if not path.is_file():
            raise InvalidSpec(f"data file {url} does not exist")
        return path
    store, key = split_object_url(url)
    if tag is None:
        try:
            tag = store.version_tag(key)
        except NotFound as exc:
            raise NotFound(f"data object {url} does not exist") from exc
    target = _cache_path(url, tag, cache)
    if target.is_file():
        log.info("data %s: read from the local cache (ETag %s)", url, tag)
        os.utime(target)  # recently used: the last to be trimmed
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, part = tempfile.mkstemp(dir=target.parent, prefix=".part-")
    os.close(fd)
    try:
        store.get_file(key, part)
        os.replace(part, target)  # atomic: a concurrent reader sees all or nothing
    finally:
        if os.path.exists(part):
            os.unlink(part)
    log.info("data %s: downloaded %d bytes into the local cache", url, target.stat().st_size)
    return target


def _cache_path(url: str, tag: str, cache) -> Path:
    name = hashlib.sha256(url.encode()).hexdigest()[:24]
    version = hashlib.sha256(tag.encode()).hexdigest()[:16]
    return Path(cache) / f"{name}-{version}{Path(urlparse(url).path).suffix.lower()}"
