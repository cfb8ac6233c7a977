"""Console progress of a followed job: its metric rows printed as Keras's ``fit`` prints them."""

from __future__ import annotations

import re
import sys

from fitfleet.formatting import format_eta, format_logs, format_time, format_value

BAR_WIDTH = 20


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
        events = sorted(
            events, key=lambda e: (e[1].get("epoch") or 0, e[0] == "epoch", e[1]["step"])
        )
        ended = {row.get("epoch") or 0 for kind, row in events if kind == "epoch"}
        latest = {
            (row.get("epoch") or 0): i for i, (kind, row) in enumerate(events) if kind == "batch"
        }
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
            text += f" \x1b[1m{format_eta(per_step * (total - done))}\x1b[0m"
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
                self._write(f"Epoch {epoch + 1}/{self.epochs or '?'}", final=True, replace=False)

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
