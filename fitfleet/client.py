"""The Python client of the fitfleet HTTP API (stdlib urllib only)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from fitfleet.records import RecordsMixin
from fitfleet.run import ENDED, NON_FINITE, History, Run
from fitfleet.sweep import Sweep, SweepMixin
from fitfleet.transport import (
    FitfleetAPIError,
    FitfleetConnectionError,
    decode,
    open_url,
    quote_id,
    read_json,
)

__all__ = [
    "DEFAULT_URL",
    "ENDED",
    "NON_FINITE",
    "Client",
    "FitfleetAPIError",
    "FitfleetConnectionError",
    "History",
    "Run",
    "Sweep",
]

DEFAULT_URL = "http://127.0.0.1:8000"


class Client(RecordsMixin, SweepMixin):
    """A connection to one fitfleet API (a job's records: :class:`fitfleet.records.RecordsMixin`;
    sweeps: :class:`fitfleet.sweep.SweepMixin`).

    Example:
        >>> client = Client("http://127.0.0.1:8000")
        >>> run = client.submit(spec)
        >>> job = run.wait()
        >>> run.history.history["loss"]
    """

    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 30):
        base = (url or os.environ.get("FITFLEET_API_URL") or DEFAULT_URL).rstrip("/")
        self.url = base.removesuffix("/api/v1")
        self.token = token or os.environ.get("FITFLEET_TOKEN") or None
        self.timeout = timeout

    # -- jobs -----------------------------------------------------------------------

    def submit(self, spec: dict) -> Run:
        """Submit a job spec (a dict, see API.md); returns its Run."""
        job = self._json("POST", "/jobs", body=spec)
        return Run(self, job["id"], job)

    def fit(
        self,
        model,
        x=None,
        y=None,
        batch_size: int | None = None,
        epochs: int = 1,
        verbose="auto",
        callbacks=None,
        validation_split: float = 0.0,
        validation_data=None,
        shuffle: bool = True,
        class_weight: dict | None = None,
        sample_weight=None,
        initial_epoch: int = 0,
        steps_per_epoch: int | None = None,
        validation_steps: int | None = None,
        validation_batch_size: int | None = None,
        validation_freq: int = 1,
        *,
        checkpoint_every: int | None = None,
        seed: int = 0,
        name: str | None = None,
        data_format: str | None = None,
        x_names=None,
        **spec_fields,
    ) -> Run:
        """Train a compiled ``keras.Model`` remotely, as ``model.fit`` would; returns its Run.

        The arguments of ``model.fit`` keep their meaning and order. ``verbose`` is the
        progress that ``Run.wait()`` prints by default (the worker prints nothing); the
        ``model.fit`` arguments that cannot carry over to a job that resumes by itself
        (``initial_epoch``, ``steps_per_epoch``, ``validation_steps``, a
        ``validation_batch_size`` other than ``batch_size``, ``validation_freq``) are
        refused unless left at their defaults.

        Args:
            model: a compiled Keras model; its compile settings go with it.
            x: a data URL (``s3://...``, ``file://...``, a prefix ending in ``/``), or arrays
                (one, a list, or a dict by input name), uploaded to the API's store.
            y: the targets when ``x`` is arrays; the array or column name(s) when it is a URL.
            validation_data: a URL, or ``(x_val, y_val)`` or ``(x_val, y_val, sw_val)``
                arrays (uploaded).
            sample_weight: with arrays, one weight per sample (an array, a list with one
                per output, or a dict by output name); with a URL, the name(s) of the
                weight array or column in the same forms.
            callbacks: standard Keras callbacks (EarlyStopping, ReduceLROnPlateau,
                TerminateOnNaN); they run on the worker.
            checkpoint_every: also checkpoint every N batches (a checkpoint per epoch is
                the default).
            x_names: the array or column name(s) of the inputs when ``x`` is a URL.
            spec_fields: other job spec fields (``queue``, ``priority``, ``max_attempts``,
                ``checkpoint``, ``deterministic``).

        Example:
            >>> run = client.fit(model, x="s3://bucket/train.npz", epochs=10, batch_size=64)
            >>> run.wait()
            >>> trained = run.load_model()
        """
        from fitfleet import packing, remote

        batch_size = 32 if batch_size is None else batch_size
        remote.refuse_fit_arguments(
            initial_epoch=initial_epoch,
            steps_per_epoch=steps_per_epoch,
            validation_steps=validation_steps,
            validation_freq=validation_freq,
            validation_batch_size=validation_batch_size,
            batch_size=batch_size,
        )
        progress = remote.verbosity(verbose)
        for argument, value in (("x", x), ("y", y), ("sample_weight", sample_weight)):
            packing.refuse_streams(value, argument)
        if isinstance(x, str):
            packing.check_names(sample_weight, "sample_weight")
            data = {"train": x, "x": x_names, "y": y, "sample_weight": sample_weight}
        else:
            if x is None:
                raise ValueError(
                    "x is required: NumPy arrays (one, a list, or a dict by input "
                    "name) or an s3:// or file:// data URL"
                )
            arrays, xn, yn = packing.pack(model, x, y)
            swn = packing.pack_weights(model, sample_weight, arrays)
            data = {"train": self.upload(arrays), "x": xn, "y": yn, "sample_weight": swn}
        if isinstance(validation_data, str):
            data["validation"] = validation_data
        elif validation_data is not None:
            data["validation"] = self.upload(
                packing.validation_arrays(
                    model, validation_data, data, uploaded=not isinstance(x, str)
                )
            )
        data["format"] = data_format
        spec = remote.to_spec(
            model,
            data,
            epochs=epochs,
            batch_size=batch_size,
            validation_split=validation_split,
            shuffle=shuffle,
            class_weight=class_weight,
            callbacks=callbacks,
            checkpoint_every=checkpoint_every,
            seed=seed,
            name=name,
            **spec_fields,
        )
        run = self.submit(spec)
        run.verbose = progress
        return run

    def upload(self, arrays) -> str:
        """Store arrays (a dict of name to array) or an ``.npz`` file; returns its data URL."""
        import numpy as np

        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "data.npz"
            if isinstance(arrays, dict):
                np.savez(path, **arrays)
            else:
                shutil.copyfile(arrays, path)
            with open(path, "rb") as body:
                answer = self._json("POST", "/data", raw=(body, path.stat().st_size))
        return answer["url"]

    def jobs(self, state: str | None = None, limit: int = 50) -> list[dict]:
        """Up to ``limit`` jobs, newest first, following the API's cursor pages."""
        return list(self.iter_jobs(state=state, limit=limit))

    def iter_jobs(
        self, state: str | None = None, limit: int | None = None, page_size: int = 100
    ) -> Iterator[dict]:
        """Jobs newest first, fetching pages lazily; all of them when ``limit`` is None."""
        cursor, seen = None, 0
        while limit is None or seen < limit:
            size = page_size if limit is None else min(page_size, limit - seen)
            page = self._json(
                "GET", "/jobs", query={"state": state, "limit": size, "cursor": cursor}
            )
            for job in page["jobs"]:
                yield job
                seen += 1
            cursor = page.get("next")
            if not cursor or not page["jobs"]:
                return

    def job(self, job_id: str) -> Run:
        """The Run of an existing job (fetched once, so an unknown id raises here)."""
        return Run(self, job_id, self._json("GET", f"/jobs/{quote_id(job_id)}"))

    def get(self, job_id: str) -> dict:
        """The job as a dict (API.md's job fields)."""
        return self._json("GET", f"/jobs/{quote_id(job_id)}")

    def cancel(self, job_id: str) -> dict:
        """Ask for the job to stop; returns the job. A job that already ended raises 409."""
        return self._json("POST", f"/jobs/{quote_id(job_id)}/cancel")

    def health(self) -> dict:
        """The API's liveness answer (``GET /healthz``)."""
        with self._open("GET", "/healthz") as resp:
            return decode(resp.read())

    # -- transport ------------------------------------------------------------------

    def _json(
        self,
        method: str,
        path: str,
        body: object = None,
        query: dict | None = None,
        raw: tuple | None = None,
    ) -> dict:
        with self._open(method, "/api/v1" + path, body=body, query=query, raw=raw) as resp:
            return read_json(resp, self.url)

    def _open(
        self,
        method: str,
        path: str,
        body: object = None,
        query: dict | None = None,
        raw: tuple | None = None,
    ):
        """An HTTP answer; ``raw`` is ``(binary file, length)`` sent as the body as it is."""
        return open_url(
            self.url, method, path, self.token, self.timeout, body=body, query=query, raw=raw
        )
