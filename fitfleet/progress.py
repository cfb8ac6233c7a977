"""Keras-like text: progress lines of a job followed over the API, and the model summary table."""

from __future__ import annotations

import sys

BAR_WIDTH = 20


def format_value(value: object) -> str:
    """A metric value as Keras prints it (4 decimals, or scientific when tiny)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    return f"{value:.4f}" if abs(value) > 1e-3 else f"{value:.4e}"


def format_logs(logs: dict | None) -> str:
    """``loss: 0.4100 - accuracy: 0.8800 - val_loss: ...`` (training keys before val_*)."""
    logs = logs or {}
    keys = [k for k in logs if not k.startswith("val_")] + [k for k in logs if k.startswith("val_")]
    if "loss" in keys:
        keys.remove("loss")
        keys.insert(0, "loss")
    return " - ".join(f"{k}: {format_value(logs[k])}" for k in keys)


class ProgressPrinter:
    """Prints ``Epoch 2/5`` headers, batch progress and epoch lines from metric rows.

    Args:
        verbose: 1 batch progress and epoch lines, 2 epoch lines only.
        stream: a text stream (default ``sys.stdout``); on a terminal the batch line
            is rewritten in place, elsewhere each update is its own line.
        bar: draw Keras's progress bar (``12/26 ━━━━━━━━━───────────``) after the count.
    """

    def __init__(self, verbose: int = 1, stream=None, bar: bool = False):
        self.verbose = verbose
        self.bar = bar
        self.stream = stream or sys.stdout
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.epochs: int | None = None
        self.steps_per_epoch: int | None = None
        self.attempts = 0
        self.header: int | None = None
        self.pending = False
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
            if kind == "batch":
                self.last_batch[epoch] = (row.get("batch") or 0) + 1
                if epoch in ended or latest[epoch] != i:
                    continue
                self._head(epoch)
                self._line(f"{self._steps(self.last_batch[epoch])} - {format_logs(row['logs'])}",
                           final=False)
            else:
                self._head(epoch)
                total = self.steps_per_epoch or self.last_batch.get(epoch)
                done = self._steps(total) if self.steps_per_epoch else f"{total}/{total}"
                prefix = f"{done} - " if total else ""
                self._line(prefix + format_logs(row.get("logs")), final=True)

    def note(self, text: str) -> None:
        """A line of its own, between progress lines."""
        self._line(f"-- {text}", final=True, replace=False)

    def end(self, job: dict) -> None:
        """Close the last line and say how the job ended."""
        error = job.get("error") or {}
        text = f"job {job.get('id')} {job.get('state')}"
        if error:
            text += f": {error.get('code')}: {error.get('message')}"
        self.note(text)

    def _steps(self, done: int) -> str:
        total = self.steps_per_epoch
        text = f"{done}/{total or 'Unknown'}"
        if not (self.bar and total):
            return text
        width = BAR_WIDTH * min(done, total) // total
        if self.tty:  # Keras's colours: green for done, grey for the rest
            return f"{text} \x1b[32m{'━' * width}\x1b[0m\x1b[37m{'━' * (BAR_WIDTH - width)}\x1b[0m"
        return f"{text} {'━' * width}{'─' * (BAR_WIDTH - width)}"

    def _head(self, epoch: int) -> None:
        if epoch != self.header:
            self.header = epoch
            self._line(f"Epoch {epoch + 1}/{self.epochs or '?'}", final=True, replace=False)

    def _line(self, text: str, final: bool, replace: bool = True) -> None:
        """Write a line; on a terminal a batch line stays open to be replaced."""
        out = self.stream
        if self.tty:
            if self.pending and not replace:
                out.write("\n")
            out.write("\r\x1b[K" + text + ("\n" if final else ""))
            self.pending = not final
        else:
            out.write(text + "\n")
        out.flush()


def format_progress(job: dict) -> str:
    """``epoch 2/5 batch 12/26 (step 38)`` from a job's progress, ``-`` while queued."""
    p = job.get("progress") or {}
    if not p.get("step") and job["state"] == "queued":
        return "-"
    text = f"epoch {(p.get('epoch') or 0) + 1}/{p.get('epochs') or '?'}"
    if p.get("steps_per_epoch"):
        text += f" batch {(p.get('batch') or 0) + 1}/{p['steps_per_epoch']}"
    return text + f" (step {p.get('step') or 0})"


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
