"""The object-store interface: put, get, list and delete objects below a root URL."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


class ObjectStore:
    """Put, get, list and delete objects below a root URL."""

    root: str

    def uri(self, key: str) -> str:
        return f"{self.root.rstrip('/')}/{key.lstrip('/')}"

    def put_file(self, key: str, path: str | os.PathLike) -> None:
        raise NotImplementedError

    def get_file(self, key: str, path: str | os.PathLike) -> None:
        raise NotImplementedError

    def put_bytes(self, key: str, data: bytes) -> None:
        with tempfile.NamedTemporaryFile(delete=False) as f:
            f.write(data)
        try:
            self.put_file(key, f.name)
        finally:
            os.unlink(f.name)

    def get_bytes(self, key: str) -> bytes:
        with tempfile.TemporaryDirectory() as d:
            target = Path(d) / "obj"
            self.get_file(key, target)
            return target.read_bytes()

    def exists(self, key: str) -> bool:
        raise NotImplementedError

    def version_tag(self, key: str) -> str:
        """A string that changes whenever the object at ``key`` changes (its ETag on S3);
        raises NotFound if there is none."""
        raise NotImplementedError

    def list(self, prefix: str) -> list[str]:
        raise NotImplementedError

    def delete_prefix(self, prefix: str) -> int:
        raise NotImplementedError


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
