"""The object store: one interface (``base``) with a local-directory (``local``) and an
S3-compatible (``s3``) implementation, chosen by URL (``urls``), and the keys under which
jobs keep their objects (``keys``). Checkpoints, trained models, uploads and data
locations all go through it.
"""

from service.storage.base import ObjectStore, sha256_file
from service.storage.keys import checkpoint_prefix, final_model_key, job_prefix, key_of
from service.storage.local import LocalStore
from service.storage.s3 import S3Store, s3_client
from service.storage.urls import open_store, split_object_url

__all__ = [
    "LocalStore",
    "ObjectStore",
    "S3Store",
    "checkpoint_prefix",
    "final_model_key",
    "job_prefix",
    "key_of",
    "open_store",
    "s3_client",
    "sha256_file",
    "split_object_url",
]
