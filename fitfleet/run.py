"""A submitted job seen from the client (Run), and its epoch logs shaped like Keras's History."""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from fitfleet.progress import ProgressPrinter

if TYPE_CHECKING:
    from fitfleet.client import Client

ENDED = (
    "succeeded",
    "failed",
    "cancelled",
)  # the server's service.store.tables.ENDED (tested equal)

# How the API writes non-finite metric values (JSON has no NaN or infinity).
NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class History:
    """Per-epoch logs of a job, shaped like ``keras.callbacks.History``.

    Values are floats as Keras logs them, NaN and +/-inf included (the API sends those as
    the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``).
    """

    def __init__(self, rows: list[dict]):
        self.epoch: list[int] = []
        self.history: dict[str, list] = {}
        for row in sorted(rows, key=lambda r: (r.get("epoch") or 0, r["step"])):
            self.epoch.append(row.get("epoch"))
            for key, value in (row.get("logs") or {}).items():
                self.history.setdefault(key, []).append(
                    NON_FINITE.get(value, value) if isinstance(value, str) else value
                )


class Run:
    """One submitted job, seen from the client."""

    def __init__(self, client: Client, job_id: str, job: dict | None = None):
        self.client = client
        self.id = job_id
        self.job = job
        self.verbose = 1  # wait()'s default; Client.fit(verbose=...) sets it

    def __repr__(self) -> str:
        state = self.job["state"] if self.job else "?"
        return f"Run(id={self.id!r}, state={state!r})"

    def refresh(self) -> dict:
        """Fetch the job again; returns it and keeps it in ``.job``."""
        self.job = self.client.get(self.id)
        return self.job

    @property
    def state(self) -> str:
        """The job's current state (fetched from the API on each access)."""
        return self.refresh()["state"]

    @property
    def history(self) -> History:
        """The epoch logs so far, as a ``keras.callbacks.History``-like object."""
        return History(self.client.all_metrics(self.id, kind="epoch"))

    def cancel(self) -> dict:
        self.job = self.client.cancel(self.id)
        return self.job

    def metrics(self, kind: str = "epoch", after: int | None = None, **kw) -> dict:
        return self.client.metrics(self.id, kind=kind, after=after, **kw)

    def attempts(self) -> list[dict]:
        return self.client.attempts(self.id)

    def checkpoints(self) -> list[dict]:
        return self.client.checkpoints(self.id)

    def summary(self) -> dict:
        return self.client.summary(self.id)

    def download(self, path: str | os.PathLike) -> Path:
        return self.client.download(self.id, path)

    def wait(
        self,
        timeout: float | None = None,
        poll: float = 1.0,
        verbose: int | None = None,
        stream=None,
        on_poll: Callable[[dict], None] | None = None,
        bar: bool = True,
    ) -> dict:
        """Poll until the job ends, printing Keras-like progress; returns the final job.

        Args:
            timeout: seconds to wait at most (None: no limit); past it, TimeoutError.
            poll: seconds between two polls.
            verbose: 0 silent, 1 batch progress and epoch lines, 2 epoch lines only
                (None: the ``verbose`` given to ``Client.fit``, else 1).
            stream: where progress goes (default ``sys.stdout``).
            on_poll: called with the job after each poll; may raise to stop waiting.
            bar: draw Keras's progress bar after the step count (False: the count only).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        verbose = self.verbose if verbose is None else verbose
        printer = ProgressPrinter(verbose=verbose, stream=stream, bar=bar) if verbose else None
        cursors: dict[str, int | None] = {"batch": None, "epoch": None}
        while True:
            job = self.refresh()
            if printer is not None:
                printer.job(job)
                self._print_new_rows(printer, cursors)
            if on_poll is not None:
                on_poll(job)
            if job["state"] in ENDED:
                if printer is not None:
                    printer.end(job)
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {self.id} still {job['state']} after {timeout}s")
            time.sleep(poll)

    def _print_new_rows(self, printer: ProgressPrinter, cursors: dict) -> None:
        kinds = ("batch", "epoch") if printer.verbose == 1 else ("epoch",)
        events = []
        for kind in kinds:
            while True:
                page = self.metrics(kind=kind, after=cursors[kind])
                events.extend((kind, row) for row in page["rows"])
                if not page["rows"]:
                    break
                cursors[kind] = page["next"]
        printer.rows(events)

    def load_model(self, compile: bool = True):
        """Download the final ``.keras`` file and load it with ``keras.models.load_model``."""
        import keras  # lazy: the client does not need Keras otherwise

        with tempfile.TemporaryDirectory() as folder:
            path = self.download(Path(folder) / f"{self.id}.keras")
            return keras.models.load_model(path, compile=compile)
