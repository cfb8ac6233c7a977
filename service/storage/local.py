"""A directory on a local or shared filesystem as an object store; writes are atomic renames."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from service.core.errors import BadRequest, NotFound
from service.storage.base import ObjectStore


class LocalStore(ObjectStore):
    """A directory on a local or shared filesystem; writes are atomic renames."""

    def __init__(self, directory: str | os.PathLike):
        self.base = Path(directory).resolve()
        self.root = self.base.as_uri()

    def _path(self, key: str) -> Path:
        p = (self.base / key.lstrip("/")).resolve()
        if p != self.base and self.base not in p.parents:
            raise BadRequest("object key leaves the store")
        return p

    def put_file(self, key, path):
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
        os.close(fd)
        try:
            shutil.copyfile(path, tmp)
            os.replace(tmp, target)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def get_file(self, key, path):
        src = self._path(key)
        if not src.is_file():
            raise NotFound(f"object {key!r} does not exist")
        shutil.copyfile(src, path)

    def exists(self, key):
        return self._path(key).is_file()

    def list(self, prefix):
        base = self._path(prefix) if prefix else self.base
        if base.is_file():
            return [prefix]
        if not base.is_dir():
            return []
        return sorted(
            str(p.relative_to(self.base))
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(".part-")
        )

    def delete_prefix(self, prefix):
        target = self._path(prefix)
        n = len(self.list(prefix))
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        elif target.is_file():
            target.unlink()
        return n

    def version_tag(self, key):
        try:
            stat = self._path(key).stat()
        except FileNotFoundError:
            raise NotFound(f"object {self.uri(key)} does not exist") from None
        return f"{stat.st_size}-{stat.st_mtime_ns}"
