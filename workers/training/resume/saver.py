"""The background checkpoint saver: write files, upload, commit, prune; one save in flight.

Commit protocol: upload every object, then insert the checkpoint row and move the job's
pointer in one fenced transaction (a checkpoint not in the table does not exist), then
apply retention: mark pruned rows deleted, then delete their objects. A failed upload
is retried with backoff and never kills training. At most one snapshot is held in memory:
a new one is taken only once the one before is written to local files (its upload and
commit may still run), so training blocks only when it asks for checkpoints faster than
they are written, and the worker's extra memory is one copy of the model's state.
The thread runs at a lower CPU priority than training, so on a busy machine the write
takes the cycles training leaves.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

from service.core.errors import LeaseLost
from service.storage import checkpoint_prefix, key_of
from workers import telemetry
from workers.training.resume import checkpoint
from workers.training.retry import retry

log = logging.getLogger("fitfleet.worker")


WRITER_NICENESS = 10


def lower_priority() -> None:
    """Give the calling thread a lower CPU priority than training (Linux: per thread)."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + WRITER_NICENESS)
    except (AttributeError, OSError) as exc:  # not Linux, or not allowed: a plain thread
        log.debug("checkpoint writer keeps its priority (%s)", exc)


class Saver:
    """Saves snapshots of one attempt in a background thread."""

    def __init__(
        self,
        *,
        jobs,
        store,
        job_id: str,
        attempt_id: int,
        attempt: int,
        keep_last: int = 3,
        keep_best: dict | None = None,
        retry_seconds: float = 120.0,
        scratch: Path | None = None,
        before_commit=None,
        project: str = "default",
    ):
        """``before_commit()`` must return True once the metric rows up to now are stored."""
        self.jobs, self.store, self.job_id, self.attempt_id = jobs, store, job_id, attempt_id
        self.project = project
        self.attempt = attempt
        self.before_commit = before_commit
        self.keep_last, self.keep_best = keep_last, keep_best
        self.retry_seconds = retry_seconds
        self.scratch = Path(scratch or tempfile.mkdtemp(prefix="fitfleet-ckpt-"))
        self._slot = None
        self._cond = threading.Condition()
        self._busy = False
        self._held = False  # a snapshot's arrays are in memory (queued or being written)
        self._closed = False
        self.lost = threading.Event()
        self.committed: list[int] = []
        self.seconds: list[float] = []
        self._thread = threading.Thread(target=self._loop, name="checkpoint-saver", daemon=True)
        self._thread.start()

    def submit(self, take) -> None:
        """Queue the snapshot ``take()`` returns, called in this thread once no other
        snapshot is held in memory (waits while the one before is being written)."""
        began = time.monotonic()
        with self._cond:
            while self._held and not self._closed:
                self._cond.wait()
        snapshot = take()
        snapshot.blocked_seconds += time.monotonic() - began  # the wait and the copy
        with self._cond:
            self._slot, self._held = snapshot, True
            self._cond.notify_all()

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until nothing is queued or in flight."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._slot is not None or self._busy:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout: float | None = None) -> bool:
        done = self.drain(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=5)
        shutil.rmtree(self.scratch, ignore_errors=True)
        return done

    def _loop(self) -> None:
        lower_priority()
        while True:
            with self._cond:
                while self._slot is None and not self._closed:
                    self._cond.wait()
                if self._slot is None:
                    return
                snap, self._slot, self._busy = self._slot, None, True
                self._cond.notify_all()
            try:
                if not self.lost.is_set():
                    self._save(snap)
            except Exception:
                log.exception("job %s: checkpoint at step %d failed", self.job_id, snap.step)
            finally:
                with self._cond:
                    self._busy = False
                    if self._slot is None:  # not written (lost lease, failure): let it go
                        self._held = False
                    self._cond.notify_all()

    def _save(self, snap: checkpoint.Snapshot) -> None:
        started = time.monotonic()
        folder = self.scratch / f"{snap.step:012d}"
        try:
            files = checkpoint.write(snap, folder)
        finally:
            snap.model, snap.arrays = None, {}  # the host copy goes once the files hold it
            with self._cond:
                self._held = False
                self._cond.notify_all()
        prefix = checkpoint_prefix(self.project, self.job_id, snap.step, self.attempt)
        upload_started = time.monotonic()
        for name in checkpoint.FILES:
            self._with_retries(
                lambda n=name: self.store.put_file(f"{prefix}/{n}", folder / n), f"upload {name}"
            )
        telemetry.checkpoint_uploaded(time.monotonic() - upload_started)
        record = {
            "step": snap.step,
            "epoch": snap.epoch,
            "batch": snap.batch,
            "uri": self.store.uri(prefix),
            "files": files,
            "bytes": sum(f["bytes"] for f in files.values()),
            "sha256": files["model.keras"]["sha256"],
            "logs": snap.meta.get("logs", {}),
        }
        if self.before_commit is not None:
            self._with_retries(self._metrics_stored, "metric flush")
        timing = {
            "blocked_seconds": round(snap.blocked_seconds, 4),
            "background_seconds": round(time.monotonic() - started, 4),
        }
        try:
            self._with_retries(
                lambda: self.jobs.commit_checkpoint(self.job_id, self.attempt_id, record, timing),
                "commit",
            )
        except LeaseLost:
            log.warning("job %s: not committing step %d: lease lost", self.job_id, snap.step)
            self.lost.set()
            self.store.delete_prefix(prefix)
            return
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        self.committed.append(snap.step)
        self.seconds.append(time.monotonic() - started)
        telemetry.checkpoint_saved(self.seconds[-1], record["bytes"])
        log.info(
            "job %s: checkpoint at step %d committed (%d bytes, %.2fs)",
            self.job_id,
            snap.step,
            record["bytes"],
            self.seconds[-1],
        )
        self._prune()

    def _metrics_stored(self) -> None:
        if not self.before_commit():
            raise RuntimeError("metric rows are not stored yet")

    def _with_retries(self, fn, what: str):
        return retry(fn, f"job {self.job_id}: checkpoint {what}", budget=self.retry_seconds)

    def _prune(self) -> None:
        """Keep the last K and the best by the monitored metric; delete the rest."""
        try:
            rows = self.jobs.checkpoints(self.job_id)
            keep = {r["step"] for r in rows[-self.keep_last :]}
            best = self._best(rows)
            if best is not None:
                keep.add(best)
            drop = [r for r in rows if r["step"] not in keep]
            if not drop:
                return
            self.jobs.mark_checkpoints_deleted(self.job_id, [r["step"] for r in drop])
            for r in drop:
                self.store.delete_prefix(key_of(self.store, r["uri"]))
        except Exception as exc:  # noqa: BLE001 - a side channel: training goes on
            log.warning("job %s: checkpoint retention failed (%s)", self.job_id, exc)

    def _best(self, rows) -> int | None:
        if not self.keep_best:
            return None
        monitor, mode = self.keep_best["monitor"], self.keep_best.get("mode", "min")
        scored = [(r["logs"][monitor], r["step"]) for r in rows if monitor in r.get("logs", {})]
        if not scored:
            return None
        return (min(scored) if mode == "min" else max(scored))[1]
