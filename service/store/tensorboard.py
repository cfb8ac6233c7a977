"""A job's batch and epoch metric rows as TensorBoard event files, laid out as Keras's
``TensorBoard`` callback lays them out.

``DIR/train`` holds ``batch_<name>`` at each global step (1 for the first batch, as
Keras counts) and ``epoch_<name>`` at each 0-based epoch; ``DIR/validation`` holds the
``val_`` metrics as ``epoch_<name>``. ``tensorboard --logdir DIR`` opens it. The metrics
table has one row per step, so a resumed job shows each step once, in order. Written
with TensorBoard's own event writer; no TensorFlow needed.
"""

from __future__ import annotations

import io
import tarfile
import tempfile
from pathlib import Path

from service.store.metrics import MetricStore

PAGE = 10_000
RUNS = ("train", "validation")


def _rows(metrics: MetricStore, job_id: str, kind: str, project: str | None):
    """Every row of a series, ascending, read a page at a time."""
    after = None
    while True:
        page = metrics.read(job_id, kind, after=after, limit=PAGE, project=project)
        yield from page["rows"]
        if len(page["rows"]) < PAGE:
            return
        after = page["next"]


def _event(wall_time: float, step: int, values: dict[str, float]):
    from tensorboard.compat.proto import event_pb2, summary_pb2

    summary = summary_pb2.Summary(
        value=[summary_pb2.Summary.Value(tag=t, simple_value=v) for t, v in values.items()]
    )
    return event_pb2.Event(wall_time=wall_time, step=step, summary=summary)


def write_event_files(
    metrics: MetricStore, job_id: str, directory: str | Path, project: str | None = None
) -> dict[str, int]:
    """Write the job's runs under ``directory``; returns the events written per run.

    NotFound if there is no such job in ``project`` (None: any project).
    """
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    metrics.version(job_id, "batch", project=project)  # NotFound before any file exists
    directory = Path(directory)
    writers = {run: EventFileWriter(str(directory / run), flush_secs=3600) for run in RUNS}
    counts = dict.fromkeys(RUNS, 0)
    try:
        for row in _rows(metrics, job_id, "batch", project):
            values = {f"batch_{k}": float(v) for k, v in row["logs"].items()}
            if values:
                writers["train"].add_event(_event(row["wall_time"], row["step"], values))
                counts["train"] += 1
        for row in _rows(metrics, job_id, "epoch", project):
            logs = {k: float(v) for k, v in row["logs"].items()}  # "NaN" and "Infinity" too
            split = {
                "train": {f"epoch_{k}": v for k, v in logs.items() if not k.startswith("val_")},
                "validation": {
                    f"epoch_{k[4:]}": v for k, v in logs.items() if k.startswith("val_")
                },
            }
            for run, values in split.items():
                if values:
                    writers[run].add_event(_event(row["wall_time"], row["epoch"], values))
                    counts[run] += 1
    finally:
        for w in writers.values():
            w.close()
    return counts


def archive(metrics: MetricStore, job_id: str, project: str | None = None) -> io.BufferedReader:
    """The event files as a ``.tar.gz`` (``train/``, ``validation/``), in an unlinked
    temporary file open for reading, positioned at its start."""
    out = tempfile.TemporaryFile(prefix="fitfleet-tensorboard-")  # noqa: SIM115 - returned open
    try:
        with tempfile.TemporaryDirectory(prefix="fitfleet-tensorboard-") as folder:
            write_event_files(metrics, job_id, folder, project=project)
            with tarfile.open(fileobj=out, mode="w:gz") as tar:
                for run in RUNS:
                    tar.add(Path(folder) / run, arcname=run)
        out.seek(0)
        return out
    except BaseException:
        out.close()
        raise
