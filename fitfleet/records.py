"""What the client reads of one job beyond its row: metric rows, events, worker log lines,
attempts, checkpoints, the model summary, the final model and a TensorBoard export.

:class:`RecordsMixin` is part of :class:`fitfleet.client.Client`; it uses the client's
``_json`` and ``_open`` transport.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from fitfleet.archive import unpack_tar_gz
from fitfleet.transport import quote_id


class RecordsMixin:
    """The per-job readers of :class:`fitfleet.client.Client`."""

    def metrics(
        self,
        job_id: str,
        kind: str = "epoch",
        after: int | None = None,
        max_points: int | None = None,
    ) -> dict:
        """Metric rows with step > ``after``: ``{"kind", "rows", "next"}``."""
        query = {"kind": kind, "after": after, "max_points": max_points}
        return self._json("GET", f"/jobs/{quote_id(job_id)}/metrics", query=query)

    def all_metrics(self, job_id: str, kind: str = "epoch") -> list[dict]:
        """Every metric row of one kind, following the ``after`` cursor."""
        rows, after = [], None
        while True:
            page = self.metrics(job_id, kind=kind, after=after)
            if not page["rows"]:
                return rows
            rows.extend(page["rows"])
            after = page["next"]

    def events(self, job_id: str, after: int | None = None) -> dict:
        """The job's events with id > ``after``, oldest first: ``{"events", "next"}``."""
        query = {"after": after}
        return self._json("GET", f"/jobs/{quote_id(job_id)}/events", query=query)

    def worker_logs(
        self, job_id: str, attempt: int | None = None, after: int | None = None
    ) -> dict:
        """Log lines the job's workers wrote (warnings and worse), of one ``attempt`` if
        given, with id > ``after``: ``{"lines", "next"}``."""
        query = {"attempt": attempt, "after": after}
        return self._json("GET", f"/jobs/{quote_id(job_id)}/logs", query=query)

    def attempts(self, job_id: str) -> list[dict]:
        """The job's attempts, oldest first."""
        return self._json("GET", f"/jobs/{quote_id(job_id)}/attempts")["attempts"]

    def checkpoints(self, job_id: str) -> list[dict]:
        """The job's committed checkpoints, oldest first."""
        return self._json("GET", f"/jobs/{quote_id(job_id)}/checkpoints")["checkpoints"]

    def summary(self, job_id: str) -> dict:
        """The Keras model summary of the job's model (layers and parameter totals)."""
        return self._json("GET", f"/jobs/{quote_id(job_id)}/summary")

    def download(self, job_id: str, path: str | os.PathLike) -> Path:
        """Save the job's final ``.keras`` file to ``path``; returns the path."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        with (
            self._open("GET", f"/api/v1/jobs/{quote_id(job_id)}/model") as resp,
            open(partial, "wb") as out,
        ):
            shutil.copyfileobj(resp, out, 1 << 20)
        partial.replace(target)
        return target

    def export_tensorboard(self, job_id: str, directory: str | os.PathLike) -> list[Path]:
        """Write the job's metrics as TensorBoard event files (``train/``, ``validation/``)."""
        with self._open("GET", f"/api/v1/jobs/{quote_id(job_id)}/tensorboard") as resp:
            return unpack_tar_gz(resp, directory)
