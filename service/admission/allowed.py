"""What a job spec may name: model classes, callbacks and data formats, one list of each.

Admission checks submissions against these lists, the model builder (``modelspec``) builds
only these callbacks, and the workers read only these formats. They live here, in a module
free of third-party imports, because every one of those users may import
``service.admission`` (the workers already read its data heads). The client (``fitfleet.remote``) may not import the
server, so it keeps a copy of :data:`CALLBACKS`; a unit test keeps the two equal.
"""

from pathlib import PurePosixPath
from urllib.parse import urlparse

MODEL_CLASSES = ("Sequential", "Functional", "Model")
CALLBACKS = ("EarlyStopping", "ReduceLROnPlateau", "TerminateOnNaN")
DATA_FORMATS = ("npz", "csv", "parquet", "tfrecord")
SUFFIXES = {
    ".npz": "npz",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".tfrecord": "tfrecord",
    ".tfrecords": "tfrecord",
}  # a file's suffix -> its format


def quoted_formats() -> str:
    """The formats for a message: ``"npz", "csv", "parquet" or "tfrecord"``."""
    names = [f'"{name}"' for name in DATA_FORMATS]
    return f"{', '.join(names[:-1])} or {names[-1]}"


def format_of(url: str, fmt: str | None = None) -> str | None:
    """The format the spec names, else the one the URL's suffix implies; None if neither."""
    return fmt or SUFFIXES.get(PurePosixPath(urlparse(url).path).suffix.lower())
