"""The object store: one interface, an S3-compatible and a local-directory implementation.

URLs choose the implementation: ``s3://bucket/prefix`` (boto3; any endpoint through
boto3's own ``AWS_ENDPOINT_URL_S3``) or ``file:///dir``. Keys are ``/``-separated.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from pathlib import Path
from urllib.parse import unquote, urlparse

from service.errors import BadRequest, NotFound, StorageError


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

    def list(self, prefix: str) -> list[str]:
        raise NotImplementedError

    def delete_prefix(self, prefix: str) -> int:
        raise NotImplementedError


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
            str(p.relative_to(self.base)) for p in base.rglob("*")
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


_S3_ENV = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_PROFILE",
           "AWS_DEFAULT_REGION", "AWS_REGION")
_s3_clients: dict[tuple, object] = {}
_s3_lock = threading.Lock()


def s3_client():
    """The process's one boto3 S3 client (thread-safe), made anew after a fork or when the
    ``AWS_*`` settings that choose the endpoint and credentials change."""
    key = (os.getpid(), *(os.environ.get(name) for name in _S3_ENV))
    with _s3_lock:
        client = _s3_clients.get(key)
        if client is None:
            import boto3
            from botocore.config import Config

            _s3_clients.clear()
            client = _s3_clients[key] = boto3.client(
                "s3", config=Config(retries={"max_attempts": 5, "mode": "standard"},
                                    connect_timeout=5, read_timeout=60))
        return client


class S3Store(ObjectStore):
    """An S3-compatible bucket (AWS, MinIO, Ceph, R2, moto) reached with boto3."""

    def __init__(self, bucket: str, prefix: str = ""):
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.root = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.client = s3_client()

    def _key(self, key: str) -> str:
        key = key.lstrip("/")
        return f"{self.prefix}/{key}" if self.prefix else key

    def put_file(self, key, path):
        try:
            self.client.upload_file(str(path), self.bucket, self._key(key))
        except Exception as exc:
            raise StorageError(f"could not upload to {self.uri(key)}") from exc

    def get_file(self, key, path):
        from botocore.exceptions import ClientError

        try:
            self.client.download_file(self.bucket, self._key(key), str(path))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise NotFound(f"object {self.uri(key)} does not exist") from exc
            raise StorageError(f"could not download {self.uri(key)}") from exc
        except Exception as exc:
            raise StorageError(f"could not download {self.uri(key)}") from exc

    def exists(self, key):
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError:
            return False

    def list(self, prefix):
        full = self._key(prefix)
        out = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=full
        ):
            for obj in page.get("Contents", []):
                k = obj["Key"]
                out.append(k[len(self.prefix) + 1:] if self.prefix else k)
        return sorted(out)

    def delete_prefix(self, prefix):
        keys = self.list(prefix)
        for i in range(0, len(keys), 1000):
            chunk = [{"Key": self._key(k)} for k in keys[i:i + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": chunk})
        return len(keys)

    def presigned_url(self, key: str, seconds: int = 300, filename: str | None = None) -> str:
        """A GET link to one object valid ``seconds``; ``filename`` names the download."""
        params = {"Bucket": self.bucket, "Key": self._key(key)}
        if filename:
            params["ResponseContentDisposition"] = f'attachment; filename="{filename}"'
        return self.client.generate_presigned_url("get_object", Params=params,
                                                  ExpiresIn=seconds)


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


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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
    return uri[len(root):]


def final_model_key(project: str, job_id: str) -> str:
    """Where a finished job's trained model (a standard ``.keras`` file) is stored."""
    return f"{job_prefix(project, job_id)}/model.keras"
