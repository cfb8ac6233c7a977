"""Data-location rules: which URLs a job may read its data from, and how large it may be.

Each refusal names the rule that refused it (``details.rule``) and never echoes
credentials or the server's own folders.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path
from urllib.parse import unquote, urlparse

from service.core.config import Settings
from service.core.errors import InvalidSpec

METADATA_HOSTS = frozenset(
    {
        "169.254.169.254",
        "fd00:ec2::254",
        "100.100.100.200",
        "metadata",
        "metadata.google.internal",
        "metadata.azure.com",
    }
)
LOCAL_NAMES = ("localhost", ".localhost", ".local", ".internal", ".localdomain")
KNOWN_SCHEMES = ("s3", "file")


def items(text: str) -> list[str]:
    """The non-empty, stripped entries of a comma-separated setting."""
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def refuse(field: str, rule: str, message: str) -> InvalidSpec:
    """The error for a refused location: a 422 whose details name the ``rule``."""
    return InvalidSpec(f"{field}: {message}", details={"field": field, "rule": rule})


def check_data_url(url: object, field: str, settings: Settings) -> None:
    """Raise InvalidSpec if ``url`` is a string no rule allows (other types are left alone)."""
    if not isinstance(url, str):
        return
    try:
        parsed = urlparse(url)
        host = parsed.hostname
    except ValueError:
        raise refuse(field, "malformed", "the data URL cannot be parsed") from None
    if "@" in parsed.netloc:
        raise refuse(
            field,
            "credentials",
            "a data URL must not carry credentials "
            "(user:password@); the server's configuration holds them",
        )
    if host:
        check_host(host, field)
    scheme = parsed.scheme.lower()
    allowed = [s.lower() for s in items(settings.data_schemes)]
    if scheme not in allowed or scheme not in KNOWN_SCHEMES:
        shown = scheme or "(none)"
        raise refuse(
            field,
            "scheme",
            f"scheme {shown!r} is not allowed for data (allowed: "
            f"{', '.join(allowed) or 'none'}; FITFLEET_DATA_SCHEMES)",
        )
    if scheme == "file":
        _check_file(parsed, field, settings)
    else:
        _check_s3(parsed, field, settings)


def check_host(host: str, field: str) -> None:
    """Refuse the cloud metadata service and private, loopback or link-local addresses."""
    name = host.strip("[]").lower().rstrip(".")
    address = _address(name)
    if name in METADATA_HOSTS or (address is not None and str(address) in METADATA_HOSTS):
        raise refuse(
            field, "metadata_address", "the cloud metadata service cannot be reached from a job"
        )
    if address is not None and not address.is_global:
        raise refuse(
            field,
            "private_address",
            "private, loopback and link-local network addresses are not allowed",
        )
    if name == LOCAL_NAMES[0] or name.endswith(LOCAL_NAMES[1:]):
        raise refuse(
            field,
            "private_address",
            f"host {name!r} names a local or internal machine, which is not allowed",
        )


def _address(name: str):
    """The IP address ``name`` spells, in any notation (127.1, 0x7f000001, 2130706433)."""
    try:
        address = ipaddress.ip_address(name)
        return getattr(address, "ipv4_mapped", None) or address
    except ValueError:
        pass
    try:
        return ipaddress.ip_address(socket.inet_aton(name))
    except (OSError, ValueError):
        return None


def _check_file(parsed, field: str, settings: Settings) -> None:
    if parsed.netloc:
        raise refuse(
            field, "file_host", "a file:// URL must not name a host (use file:///absolute/path)"
        )
    raw = unquote(parsed.path)
    if "\x00" in raw or not raw.startswith("/"):
        raise refuse(field, "file_path", "a file:// URL needs an absolute path")
    if ".." in raw.split("/"):
        raise refuse(field, "dot_segments", "'..' is not allowed in a data path")
    roots = [Path(r).resolve() for r in items(settings.data_file_roots)]
    path = Path(raw)
    if not any(_under(path, root) for root in roots):
        raise refuse(
            field,
            "file_root",
            "the path is outside the folders data may be read from (FITFLEET_DATA_FILE_ROOTS)",
        )
    real = Path(os.path.realpath(raw))
    if not any(_under(real, root) for root in roots):
        raise refuse(
            field,
            "symlink_escape",
            "the path leads through a symbolic link to "
            "outside the folders data may be read from (FITFLEET_DATA_FILE_ROOTS)",
        )
    store = urlparse(settings.storage_url)
    if store.scheme == "file" and _under(real, Path(unquote(store.path)).resolve() / "projects"):
        raise refuse(field, "job_store", "the job store's checkpoints and models are not data")


def _check_s3(parsed, field: str, settings: Settings) -> None:
    bucket, key = parsed.netloc, parsed.path.lstrip("/")
    if ".." in key.split("/"):
        raise refuse(field, "dot_segments", "'..' is not allowed in a data key")
    store = urlparse(settings.storage_url)
    store_bucket = store.netloc if store.scheme == "s3" else None
    store_prefix = store.path.strip("/")
    if bucket == store_bucket:
        projects = f"{store_prefix}/projects/" if store_prefix else "projects/"
        if key.startswith(projects):
            raise refuse(field, "job_store", "the job store's checkpoints and models are not data")
    locations = items(settings.data_s3_locations)
    if "*" in locations:
        return
    if not locations:
        if bucket == store_bucket:
            return
        raise refuse(
            field,
            "s3_location",
            f"bucket {bucket!r} is not an allowed data "
            "location (only the job store's bucket; see FITFLEET_DATA_S3_LOCATIONS)",
        )
    for entry in locations:
        want_bucket, _, want_prefix = entry.partition("/")
        if bucket == want_bucket and (
            not want_prefix or key.startswith(want_prefix.rstrip("/") + "/")
        ):
            return
    raise refuse(
        field,
        "s3_location",
        f"s3://{bucket}/ with this key is not an allowed data "
        "location (FITFLEET_DATA_S3_LOCATIONS)",
    )


def _under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def check_size(size: int | None, field: str, settings: Settings) -> None:
    """Refuse a data object larger than ``FITFLEET_MAX_DATA_BYTES`` (None: size unknown)."""
    if size is not None and size > settings.max_data_bytes:
        raise InvalidSpec(
            f"{field} is {size} bytes, over the limit of {settings.max_data_bytes}"
            " bytes (FITFLEET_MAX_DATA_BYTES)",
            details={
                "field": field,
                "limit": settings.max_data_bytes,
                "setting": "FITFLEET_MAX_DATA_BYTES",
            },
        )


def check_spec_locations(raw: object, settings: Settings) -> None:
    """Apply :func:`check_data_url` to a submitted spec's data locations, as sent."""
    data = raw.get("data") if isinstance(raw, dict) else None
    if isinstance(data, dict):
        for key in ("train", "validation"):
            check_data_url(data.get(key), f"data.{key}", settings)


def check_data_sizes(spec: dict, settings: Settings) -> None:
    """Apply :func:`check_size` to a normalized spec's data objects whose size can be read."""
    from service.admission import datahead

    for key in ("train", "validation"):
        url = (spec.get("data") or {}).get(key)
        if not url:
            continue
        try:
            size = datahead.open_source(url).size
        except (datahead.Uninspectable, datahead.Missing, datahead.Unreadable):
            continue  # existence and format are the shape check's to report
        check_size(size, f"data.{key}", settings)
