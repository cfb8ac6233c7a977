"""The Python client of the fitfleet HTTP API (stdlib urllib only)."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

from fitfleet.progress import ProgressPrinter

DEFAULT_URL = "http://127.0.0.1:8000"
ENDED = ("succeeded", "failed", "cancelled")  # the server's service.store.tables.ENDED (tested equal)


class FitfleetAPIError(Exception):
    """An error answer of the API, with the fields of its error envelope."""

    def __init__(self, status: int | None, code: str, message: str, details: object = None):
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details


class FitfleetConnectionError(FitfleetAPIError):
    """The API could not be reached (refused, timed out, name not resolved)."""

    def __init__(self, url: str, reason: object):
        super().__init__(None, "connection_error",
                         f"cannot reach the fitfleet API at {url} ({reason}); "
                         "is `fitfleet api` running and FITFLEET_API_URL right?")
        self.url = url


class Client:
    """A connection to one fitfleet API.

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

    def fit(self, model, x=None, y=None, batch_size: int | None = None, epochs: int = 1,
            verbose="auto", callbacks=None, validation_split: float = 0.0,
            validation_data=None, shuffle: bool = True, class_weight: dict | None = None,
            sample_weight=None, initial_epoch: int = 0, steps_per_epoch: int | None = None,
            validation_steps: int | None = None, validation_batch_size: int | None = None,
            validation_freq: int = 1, *, checkpoint_every: int | None = None, seed: int = 0,
            name: str | None = None, data_format: str | None = None, x_names=None,
            **spec_fields) -> Run:
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
        from fitfleet import remote

        batch_size = 32 if batch_size is None else batch_size
        remote.refuse_fit_arguments(initial_epoch=initial_epoch, steps_per_epoch=steps_per_epoch,
                              validation_steps=validation_steps, validation_freq=validation_freq,
                              validation_batch_size=validation_batch_size, batch_size=batch_size)
        progress = remote.verbosity(verbose)
        for argument, value in (("x", x), ("y", y), ("sample_weight", sample_weight)):
            remote.refuse_streams(value, argument)
        if isinstance(x, str):
            remote.check_names(sample_weight, "sample_weight")
            data = {"train": x, "x": x_names, "y": y, "sample_weight": sample_weight}
        else:
            if x is None:
                raise ValueError("x is required: NumPy arrays (one, a list, or a dict by input "
                                 "name) or an s3:// or file:// data URL")
            arrays, xn, yn = remote.pack(model, x, y)
            swn = remote.pack_weights(model, sample_weight, arrays)
            data = {"train": self.upload(arrays), "x": xn, "y": yn, "sample_weight": swn}
        if isinstance(validation_data, str):
            data["validation"] = validation_data
        elif validation_data is not None:
            data["validation"] = self._upload_validation(model, validation_data, data,
                                                         uploaded=not isinstance(x, str))
        data["format"] = data_format
        spec = remote.to_spec(model, data, epochs=epochs, batch_size=batch_size,
                              validation_split=validation_split, shuffle=shuffle,
                              class_weight=class_weight, callbacks=callbacks,
                              checkpoint_every=checkpoint_every, seed=seed, name=name,
                              **spec_fields)
        run = self.submit(spec)
        run.verbose = progress
        return run

    def _upload_validation(self, model, validation_data, data: dict, uploaded: bool) -> str:
        """``(x_val, y_val)`` or ``(x_val, y_val, sw_val)`` uploaded under the training names."""
        from fitfleet import remote

        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("validation_data must be a URL or a tuple (x_val, y_val) or "
                             "(x_val, y_val, sample_weight_val) of arrays")
        for value in validation_data:
            remote.refuse_streams(value, "validation_data")
        like = (data["x"], data["y"]) if uploaded else None
        arrays, _, _ = remote.pack(model, *validation_data[:2], like=like)
        if len(validation_data) == 3 and validation_data[2] is not None:
            if data.get("sample_weight") is None:
                raise ValueError("validation sample weights need sample_weight for the "
                                 "training data too (give ones to leave it unweighted)")
            remote.pack_weights(model, validation_data[2], arrays, like=data["sample_weight"])
        return self.upload(arrays)

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

    def iter_jobs(self, state: str | None = None, limit: int | None = None,
                  page_size: int = 100) -> Iterator[dict]:
        """Jobs newest first, fetching pages lazily; all of them when ``limit`` is None."""
        cursor, seen = None, 0
        while limit is None or seen < limit:
            size = page_size if limit is None else min(page_size, limit - seen)
            page = self._json("GET", "/jobs", query={"state": state, "limit": size,
                                                     "cursor": cursor})
            for job in page["jobs"]:
                yield job
                seen += 1
            cursor = page.get("next")
            if not cursor or not page["jobs"]:
                return

    def job(self, job_id: str) -> Run:
        """The Run of an existing job (fetched once, so an unknown id raises here)."""
        return Run(self, job_id, self._json("GET", f"/jobs/{_q(job_id)}"))

    def get(self, job_id: str) -> dict:
        """The job as a dict (API.md's job fields)."""
        return self._json("GET", f"/jobs/{_q(job_id)}")

    def cancel(self, job_id: str) -> dict:
        """Ask for the job to stop; returns the job. A job that already ended raises 409."""
        return self._json("POST", f"/jobs/{_q(job_id)}/cancel")

    def metrics(self, job_id: str, kind: str = "epoch", after: int | None = None,
                max_points: int | None = None) -> dict:
        """Metric rows with step > ``after``: ``{"kind", "rows", "next"}``."""
        query = {"kind": kind, "after": after, "max_points": max_points}
        return self._json("GET", f"/jobs/{_q(job_id)}/metrics", query=query)

    def all_metrics(self, job_id: str, kind: str = "epoch") -> list[dict]:
        """Every metric row of one kind, following the ``after`` cursor."""
        rows, after = [], None
        while True:
            page = self.metrics(job_id, kind=kind, after=after)
            if not page["rows"]:
                return rows
            rows.extend(page["rows"])
            after = page["next"]

    def attempts(self, job_id: str) -> list[dict]:
        """The job's attempts, oldest first."""
        return self._json("GET", f"/jobs/{_q(job_id)}/attempts")["attempts"]

    def checkpoints(self, job_id: str) -> list[dict]:
        """The job's committed checkpoints, oldest first."""
        return self._json("GET", f"/jobs/{_q(job_id)}/checkpoints")["checkpoints"]

    def summary(self, job_id: str) -> dict:
        """The Keras model summary of the job's model (layers and parameter totals)."""
        return self._json("GET", f"/jobs/{_q(job_id)}/summary")

    def download(self, job_id: str, path: str | os.PathLike) -> Path:
        """Save the job's final ``.keras`` file to ``path``; returns the path."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        with self._open("GET", f"/api/v1/jobs/{_q(job_id)}/model") as resp, \
                open(partial, "wb") as out:
            shutil.copyfileobj(resp, out, 1 << 20)
        partial.replace(target)
        return target

    def health(self) -> dict:
        """The API's liveness answer (``GET /healthz``)."""
        with self._open("GET", "/healthz") as resp:
            return _decode(resp.read())

    # -- transport ------------------------------------------------------------------

    def _json(self, method: str, path: str, body: object = None,
              query: dict | None = None, raw: tuple | None = None) -> dict:
        with self._open(method, "/api/v1" + path, body=body, query=query, raw=raw) as resp:
            try:
                raw = resp.read()
            except OSError as exc:
                raise FitfleetConnectionError(self.url, exc) from None
        return _decode(raw)

    def _open(self, method: str, path: str, body: object = None, query: dict | None = None,
              raw: tuple | None = None):
        """An HTTP answer; ``raw`` is ``(binary file, length)`` sent as the body as it is."""
        url = self.url + path
        if query:
            params = {k: v for k, v in query.items() if v is not None}
            if params:
                url += "?" + urllib.parse.urlencode(params)
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data if raw is None else raw[0], method=method)
        req.add_header("Accept", "application/json")
        if raw is not None:
            req.add_header("Content-Type", "application/octet-stream")
            req.add_header("Content-Length", str(raw[1]))
        elif data is not None:
            req.add_header("Content-Type", "application/json")
        if self.token:  # not carried to a redirect target such as a presigned URL
            req.add_unredirected_header("Authorization", f"Bearer {self.token}")
        try:
            return urllib.request.urlopen(req, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            raise _api_error(exc) from None
        except (urllib.error.URLError, OSError) as exc:
            raise FitfleetConnectionError(self.url, getattr(exc, "reason", exc)) from None


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
                    NON_FINITE.get(value, value) if isinstance(value, str) else value)


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

    def wait(self, timeout: float | None = None, poll: float = 1.0, verbose: int | None = None,
             stream=None, on_poll: Callable[[dict], None] | None = None,
             bar: bool = True) -> dict:
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


def _q(job_id: str) -> str:
    return urllib.parse.quote(str(job_id), safe="")


def _decode(raw: bytes) -> dict:
    return json.loads(raw.decode("utf-8")) if raw else {}


def _api_error(exc: urllib.error.HTTPError) -> FitfleetAPIError:
    try:
        raw = exc.read()
    except Exception:  # noqa: BLE001 - the body is only a better message
        raw = b""
    try:
        err = json.loads(raw.decode("utf-8"))["error"]
        return FitfleetAPIError(exc.code, err.get("code") or "error",
                                err.get("message") or str(exc.reason), err.get("details"))
    except (ValueError, KeyError, TypeError, AttributeError):
        text = raw.decode("utf-8", "replace").strip()[:200] or str(exc.reason)
        return FitfleetAPIError(exc.code, f"http_{exc.code}", text)

