"""Archives the API answers with (a job's TensorBoard files), unpacked safely."""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from pathlib import Path


def unpack_tar_gz(stream, directory: str | os.PathLike) -> list[Path]:
    """Unpack a ``.tar.gz`` read from ``stream`` into ``directory``; returns its files.

    Only plain files and folders are taken, and only inside ``directory`` (tarfile's
    ``data`` filter refuses absolute paths, ``..`` and links).
    """
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(prefix="fitfleet-") as spool:
        shutil.copyfileobj(stream, spool, 1 << 20)
        spool.seek(0)
        with tarfile.open(fileobj=spool, mode="r:gz") as tar:
            members = [m for m in tar.getmembers() if m.isfile() or m.isdir()]
            tar.extractall(target, members=members, filter="data")
    return [target / m.name for m in members if m.isfile()]
