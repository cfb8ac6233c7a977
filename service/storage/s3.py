"""An S3-compatible bucket (AWS, MinIO, Ceph, R2, moto) as an object store, through boto3.

The endpoint comes from boto3's own settings (``AWS_ENDPOINT_URL_S3`` and the ``AWS_*``
credential chain); a process keeps one client (:func:`s3_client`).

Files travel streamed: an upload above ``PART_BYTES`` is a multipart upload read from the
file part by part, a download is ranged GETs written to the file as they come, so a
checkpoint of gigabytes never sits whole in memory (``TransferConfig`` below).
"""

from __future__ import annotations

import os
import threading

from service.core.errors import NotFound, StorageError
from service.storage.base import ObjectStore

_S3_ENV = (
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
)
PART_BYTES = 64 << 20  # multipart above this, in parts of this size (S3: 5 MiB-5 GiB)
CONCURRENCY = 4  # parts in flight per transfer
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
                "s3",
                config=Config(
                    retries={"max_attempts": 5, "mode": "standard"},
                    connect_timeout=5,
                    read_timeout=60,
                ),
            )
        return client


class S3Store(ObjectStore):
    """An S3-compatible bucket (AWS, MinIO, Ceph, R2, moto) reached with boto3."""

    def __init__(self, bucket: str, prefix: str = "", part_bytes: int = PART_BYTES):
        from boto3.s3.transfer import TransferConfig

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.root = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.client = s3_client()
        self.transfer = TransferConfig(
            multipart_threshold=part_bytes,
            multipart_chunksize=part_bytes,
            max_concurrency=CONCURRENCY,
        )

    def _key(self, key: str) -> str:
        key = key.lstrip("/")
        return f"{self.prefix}/{key}" if self.prefix else key

    def put_file(self, key, path):
        try:
            self.client.upload_file(str(path), self.bucket, self._key(key), Config=self.transfer)
        except Exception as exc:
            raise StorageError(f"could not upload to {self.uri(key)}") from exc

    def get_file(self, key, path):
        from botocore.exceptions import ClientError

        try:
            self.client.download_file(self.bucket, self._key(key), str(path), Config=self.transfer)
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

    def version_tag(self, key):
        from botocore.exceptions import ClientError

        try:
            return self.client.head_object(Bucket=self.bucket, Key=self._key(key))["ETag"]
        except ClientError as exc:
            raise NotFound(f"object {self.uri(key)} does not exist") from exc

    def list(self, prefix):
        full = self._key(prefix)
        out = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=full
        ):
            for obj in page.get("Contents", []):
                k = obj["Key"]
                out.append(k[len(self.prefix) + 1 :] if self.prefix else k)
        return sorted(out)

    def delete_prefix(self, prefix):
        keys = self.list(prefix)
        for i in range(0, len(keys), 1000):
            chunk = [{"Key": self._key(k)} for k in keys[i : i + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": chunk})
        return len(keys)

    def presigned_url(self, key: str, seconds: int = 300, filename: str | None = None) -> str:
        """A GET link to one object valid ``seconds``; ``filename`` names the download."""
        params = {"Bucket": self.bucket, "Key": self._key(key)}
        if filename:
            params["ResponseContentDisposition"] = f'attachment; filename="{filename}"'
        return self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=seconds)
