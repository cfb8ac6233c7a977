"""Keras-like text: progress lines of a job followed over the API, and the model summary table."""

from __future__ import annotations

import re
import sys

BAR_WIDTH = 20


def position(step: int | None, steps_per_epoch: int | None,
             epochs: int | None = None) -> str:
    """A place in training as Keras numbers it, from the global steps done.

    ``step`` counts the batches done since the start (the API's 0-based fields aside):
    130 steps of 26 per epoch is the end of the fifth epoch, ``Epoch 5/5 26/26``.

    Example:
        >>> position(130, 26, 5)
        'Epoch 5/5 26/26 (step 130)'
        >>> position(27, 26, 5)
        'Epoch 2/5 1/26 (step 27)'
    """
    step = step or 0
    total = epochs or "?"
    if not steps_per_epoch:
        return f"Epoch ?/{total} (step {step})"
    epoch = max(1, -(-step // steps_per_epoch))  # the epoch the last step done belongs to
    batch = step - (epoch - 1) * steps_per_epoch
    return f"Epoch {epoch}/{total} {batch}/{steps_per_epoch} (step {step})"


def format_value(value: object, verbose: int = 1) -> str:
    """A metric value as Keras's Progbar prints it (4 decimals, or scientific when tiny).

    Keras's ``verbose=2`` line compares the signed value with 1e-3, ``verbose=1`` its size.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    size = abs(value) if verbose == 1 else value
    return f"{value:.4f}" if size > 1e-3 else f"{value:.4e}"


def format_logs(logs: dict | None, verbose: int = 1) -> str:
    """``accuracy: 0.8800 - loss: 0.4100 - val_...``: in the logs' own order, as Keras does."""
    return " - ".join(f"{k}: {format_value(v, verbose)}" for k, v in (logs or {}).items())


def format_time(seconds_per_step: float) -> str:
    """`` 66ms/step`` (Keras's unit: s, ms or us per step, with its leading space)."""
    t = seconds_per_step
    if t >= 1 or t == 0:
        return f" {t:.0f}s/step"
    if t >= 1e-3:
        return f" {t * 1000.0:.0f}ms/step"
    return f" {t * 1000000.0:.0f}us/step"


def _eta(seconds: float) -> str:
    if seconds > 3600:
        return f"{seconds // 3600:.0f}:{(seconds % 3600) // 60:02.0f}:{seconds % 60 // 1:02.0f}"
    if seconds > 60:
        return f"{seconds // 60:.0f}:{seconds % 60 // 1:02.0f}"
    return f"{int(seconds)}s"


class _Clock:
    """Keras's step timing for one epoch, from the rows' ``wall_time``."""

    def __init__(self, start: float | None):
        self.start = start  # the previous epoch's end, when it was seen
        self.first: tuple[int, float] | None = None  # (steps done, wall time), earliest batch
        self.last: tuple[int, float] | None = None  # the same, latest batch

    def see(self, done: int, wall: float | None) -> None:
        if wall is None:
            return
        if self.first is None or done < self.first[0]:
            self.first = (done, wall)
        if self.last is None or done > self.last[0]:
            self.last = (done, wall)

    def per_step(self, done: int, now: float | None) -> float:
        """``fit(verbose=1)``'s seconds a step: the first step left out when more are known."""
        if now is None or not done or self.first is None:
            return 0.0
        first_done, first_wall = self.first
        if done > first_done:
            return max(0.0, (now - first_wall) / (done - first_done))
        return max(0.0, (now - self._start()) / done)

    def elapsed(self, now: float | None) -> float:
        """Seconds since the epoch began."""
        return 0.0 if now is None or self.first is None else max(0.0, now - self._start())

    def _start(self) -> float:
        if self.start is not None:
            return self.start
        (d0, t0), (d1, t1) = self.first, self.last  # steps about as long as the batches'
        step = (t1 - t0) / (d1 - d0) if d1 > d0 else 0.0
        return t0 - step * d0


class ProgressPrinter:
    """Prints a job's metric rows line for line as Keras 3's ``fit`` does.

    On a terminal it is ``fit(verbose=1)``: ``Epoch 2/5``, a bar rewritten in place
    (``12/26 ━━━━━━━━━━━━━━━━━━━━ 1s 66ms/step - accuracy: 0.8 - loss: 0.4``) and the
    epoch's final line. Elsewhere (a file, a pipe) it is ``fit(verbose=2)``: the header
    and one line an epoch, ``26/26 - 2s - 66ms/step - accuracy: ...``.

    Args:
        verbose: 1 batch progress and epoch lines, 2 epoch lines only.
        stream: a text stream (default ``sys.stdout``).
        bar: draw the bar on a terminal (False: the step count only).
    """

    def __init__(self, verbose: int = 1, stream=None, bar: bool = True):
        self.verbose = verbose
        self.bar = bar
        self.stream = stream or sys.stdout
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.epochs: int | None = None
        self.steps_per_epoch: int | None = None
        self.attempts = 0
        self.header: int | None = None
        self.width = 0  # of the open line on a terminal, 0 when none is open
        self.clocks: dict[int, _Clock] = {}
        self.ended: dict[int, float | None] = {}
        self.last_batch: dict[int, int] = {}

    def job(self, job: dict) -> None:
        """Take the job's totals; note a new attempt after a lost or preempted one."""
        progress = job.get("progress") or {}
        self.epochs = progress.get("epochs") or self.epochs
        self.steps_per_epoch = progress.get("steps_per_epoch") or self.steps_per_epoch
        attempts = job.get("attempts") or 0
        if self.attempts and attempts > self.attempts:
            self.note(f"attempt {attempts} started; resuming from the latest checkpoint")
        self.attempts = max(self.attempts, attempts)

    def rows(self, events: list[tuple[str, dict]]) -> None:
        """Print new ``(kind, row)`` events: the latest batch of each epoch, every epoch."""
        events = sorted(events, key=lambda e: (e[1].get("epoch") or 0,
                                               e[0] == "epoch", e[1]["step"]))
        ended = {row.get("epoch") or 0 for kind, row in events if kind == "epoch"}
        latest = {(row.get("epoch") or 0): i for i, (kind, row) in enumerate(events)
                  if kind == "batch"}
        for i, (kind, row) in enumerate(events):
            epoch = row.get("epoch") or 0
            clock = self._clock(epoch)
            if kind == "batch":
                done = (row.get("batch") or 0) + 1
                self.last_batch[epoch] = done
                clock.see(done, row.get("wall_time"))
                if epoch in ended or latest[epoch] != i:
                    continue
                if self.tty and self.verbose == 1:
                    self._head(epoch)
                    self._write(self._bar_line(done, row, clock, final=False), final=False)
            else:
                self.ended[epoch] = row.get("wall_time")
                self._head(epoch)
                done = self.steps_per_epoch or self.last_batch.get(epoch) or 0
                if self.tty and self.verbose == 1:
                    self._write(self._bar_line(done, row, clock, final=True), final=True)
                else:
                    self._write(self._epoch_line(done, row, clock), final=True)

    def note(self, text: str) -> None:
        """A line of its own, between progress lines."""
        self._write(f"-- {text}", final=True, replace=False)

    def end(self, job: dict) -> None:
        """Close the last line and say how the job ended."""
        error = job.get("error") or {}
        text = f"job {job.get('id')} {job.get('state')}"
        if error:
            text += f": {error.get('code')}: {error.get('message')}"
        self.note(text)

    def _clock(self, epoch: int) -> _Clock:
        if epoch not in self.clocks:
            self.clocks[epoch] = _Clock(self.ended.get(epoch - 1))
        return self.clocks[epoch]

    def _count(self, done: int) -> str:
        total = self.steps_per_epoch
        if not total:
            return f"{done:7d}/Unknown"
        return f"{done:{len(str(total))}d}/{total}"

    def _bar_line(self, done: int, row: dict, clock: _Clock, final: bool) -> str:
        """Keras's ``verbose=1`` line: count, bar, ETA or elapsed time, time a step, logs."""
        total, now = self.steps_per_epoch, row.get("wall_time")
        per_step = clock.per_step(done, now)
        if total:
            text = f"\x1b[1m{self._count(done)}\x1b[0m "
            if self.bar:
                width = int(BAR_WIDTH * done / total)
                if width > 0:
                    text += f"\33[32m{'━' * width}\x1b[0m"
                text += f"\33[37m{'━' * (BAR_WIDTH - width)}\x1b[0m"
        else:
            text = self._count(done)
        if total and not final:
            text += f" \x1b[1m{_eta(per_step * (total - done))}\x1b[0m"
        else:
            text += f" \x1b[1m{clock.elapsed(now):.0f}s\x1b[0m"
        text += format_time(per_step)
        for key, value in (row.get("logs") or {}).items():
            text += f" - {key}: {format_value(value, 1)}"
        return text

    def _epoch_line(self, done: int, row: dict, clock: _Clock) -> str:
        """Keras's ``verbose=2`` line: ``26/26 - 2s - 66ms/step - accuracy: ...``."""
        now, logs = row.get("wall_time"), format_logs(row.get("logs"), verbose=2)
        if not done:  # no step count known (Keras would print nothing): the logs alone
            return logs
        elapsed = clock.elapsed(now)
        text = f"{self._count(done)} - {elapsed:.0f}s -"
        text += format_time(elapsed / done)  # Keras times the whole epoch here
        return text + (f" - {logs}" if logs else "")

    def _head(self, epoch: int) -> None:
        if epoch != self.header:
            self.header = epoch
            if (self.epochs or 0) != 1:  # Keras prints no header for a single epoch
                self._write(f"Epoch {epoch + 1}/{self.epochs or '?'}", final=True,
                            replace=False)

    def _write(self, text: str, final: bool, replace: bool = True) -> None:
        """Write a line; on a terminal a batch line stays open to be replaced, as Keras's."""
        out = self.stream
        if self.tty and self.width and not replace:
            out.write("\n")
            self.width = 0
        if self.tty and self.width:
            visible = len(_ANSI.sub("", text))
            out.write("\r" + text + " " * max(0, self.width - visible))
        else:
            out.write(text)
        if final:
            out.write("\n")
        self.width = 0 if final else max(self.width, len(_ANSI.sub("", text)))
        out.flush()


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def format_progress(job: dict) -> str:
    """``Epoch 2/5 12/26 (step 38)`` from a job's progress, ``-`` while queued."""
    p = job.get("progress") or {}
    if not p.get("step") and job["state"] == "queued":
        return "-"
    return position(p.get("step"), p.get("steps_per_epoch"), p.get("epochs"))


def format_table(rows: list[tuple]) -> str:
    """Rows of cells as left-aligned columns, the first row being the header."""
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()
                     for r in rows)


def format_summary(summary: dict) -> str:
    """A Keras-like summary table: Layer (type) | Output Shape | Param #, then the totals."""
    widths = (33, 26, 12)
    rule = "_" * sum(widths)
    out = [f'Model: "{summary.get("name") or "model"}"', rule,
           _cells(("Layer (type)", "Output Shape", "Param #"), widths), "=" * sum(widths)]
    for layer in summary.get("layers") or []:
        kind = _pick(layer, "class_name", "class", "type") or "?"
        shape = _shape(_pick(layer, "output_shape", "shape"))
        params = _pick(layer, "params", "param_count", "count_params", "parameters") or 0
        out.append(_cells((f"{layer.get('name', '?')} ({kind})", shape, _num(params)), widths))
    out.append("=" * sum(widths))
    totals = summary.get("totals") or summary
    for label, keys in (("Total params", ("total_params", "total")),
                        ("Trainable params", ("trainable_params", "trainable")),
                        ("Non-trainable params", ("non_trainable_params", "non_trainable"))):
        value = _pick(totals, *keys)
        if value is not None:
            out.append(f"{label}: {_num(value)}")
    out.append(rule)
    return "\n".join(out)


def _num(value) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def _pick(d: dict, *keys):
    return next((d[k] for k in keys if d.get(k) is not None), None)


def _shape(shape) -> str:
    if isinstance(shape, list) and shape and all(isinstance(s, list) for s in shape):
        return ", ".join(_shape(s) for s in shape)
    if isinstance(shape, list):
        inner = ", ".join("None" if s is None else str(s) for s in shape)
        return f"({inner},)" if len(shape) == 1 else f"({inner})"
    return "?" if shape is None else str(shape)


def _cells(cells: tuple, widths: tuple) -> str:
    text = ""
    for cell, width in zip(cells, widths):
        text += " " + str(cell).ljust(width - 1)
    return text.rstrip()
