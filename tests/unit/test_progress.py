"""fitfleet's console progress against Keras's own ProgbarLogger, for the same logs and times."""

from __future__ import annotations

import contextlib
import io
import re
from unittest import mock

import pytest

from fitfleet.formatting import format_logs, format_progress, position
from fitfleet.progress import ProgressPrinter

EPOCHS, SPE, STEP_S, VAL_S = 3, 4, 0.066, 0.5
T0 = 1000.0


def _logs(epoch: int, batch: int) -> dict:
    # Keras 3.15's own order: compiled metrics before the loss tracker's "loss".
    return {"accuracy": 0.5 + 0.01 * (epoch * SPE + batch), "loss": 1.0 / (1 + epoch * SPE + batch)}


def _val(epoch: int) -> dict:
    return {**_logs(epoch, SPE - 1), "val_accuracy": 0.4, "val_loss": 2e-4}


def _timeline():
    """(kind, epoch, batch, wall time, logs) of a fit: evenly spaced steps, then validation."""
    t = T0
    for e in range(EPOCHS):
        for b in range(SPE):
            t += STEP_S
            yield "batch", e, b, t, _logs(e, b)
        t += VAL_S
        yield "epoch", e, None, t, _val(e)


def _keras(verbose: int) -> str:
    clock = {"t": T0}
    out = io.StringIO()
    import keras

    with mock.patch("time.time", lambda: clock["t"]), contextlib.redirect_stdout(out):
        cb = keras.callbacks.ProgbarLogger()
        cb.set_params({"verbose": verbose, "epochs": EPOCHS, "steps": SPE})
        cb.on_train_begin()
        for kind, e, b, t, logs in _timeline():
            if kind == "batch" and b == 0:
                cb.on_epoch_begin(e)
            clock["t"] = t
            if kind == "batch":
                cb.on_train_batch_end(b, logs)
            else:
                cb.on_epoch_end(e, logs)
    return out.getvalue()


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _fitfleet(stream) -> str:
    printer = ProgressPrinter(verbose=1, stream=stream)
    printer.job({"progress": {"epochs": EPOCHS, "steps_per_epoch": SPE}, "attempts": 1})
    for kind, e, b, t, logs in _timeline():  # one poll a row: every update is printed
        step = e * SPE + (b + 1 if kind == "batch" else SPE)
        printer.rows([(kind, {"step": step, "epoch": e, "batch": b, "logs": logs, "wall_time": t})])
    return stream.getvalue()


def _screen(text: str) -> list[str]:
    """What a terminal shows: each line's text after its last carriage return."""
    text = text.replace("\b", "")
    return [line.split("\r")[-1].rstrip(" ") for line in text.split("\n")]


def _updates(text: str) -> list[str]:
    """Every rewrite of the bar line, in order (what each update put on the screen)."""
    return [
        part.rstrip(" ")
        for line in text.replace("\b", "").split("\n")
        for part in line.split("\r")
        if part.strip()
    ]


def test_terminal_output_is_keras_verbose_1_line_for_line():
    ours, theirs = _fitfleet(_Tty()), _keras(1)
    assert _screen(ours) == _screen(theirs)
    assert "\x1b[1m4/4\x1b[0m \x1b[32m" + "━" * 20 in ours and "ms/step - accuracy: " in ours
    # Every update from the second epoch on, when the epoch's start is known from the rows.
    first = theirs.index("Epoch 2/")
    assert _updates(ours[ours.index("Epoch 2/") :]) == _updates(theirs[first:])


def test_pipe_output_is_keras_verbose_2_line_for_line():
    ours = _fitfleet(io.StringIO())
    assert ours == _keras(2)
    assert ours.splitlines()[:2] == [
        "Epoch 1/3",
        (
            "4/4 - 1s - 191ms/step - accuracy: 0.5300 - loss: 0.2500 - val_accuracy: 0.4000 "
            "- val_loss: 2.0000e-04"
        ),
    ]


def test_logs_keep_their_order():
    assert format_logs({"accuracy": 0.88, "loss": 0.41}) == "accuracy: 0.8800 - loss: 0.4100"
    assert format_logs({"loss": 0.0001}) == "loss: 1.0000e-04"


@pytest.mark.parametrize(
    ("step", "text"),
    [
        (0, "Epoch 1/5 0/26 (step 0)"),
        (1, "Epoch 1/5 1/26 (step 1)"),
        (26, "Epoch 1/5 26/26 (step 26)"),
        (27, "Epoch 2/5 1/26 (step 27)"),
        (130, "Epoch 5/5 26/26 (step 130)"),
    ],
)
def test_position_is_keras_numbering(step, text):
    assert position(step, 26, 5) == text


def test_finished_job_shows_26_of_26_not_27():
    job = {
        "state": "succeeded",
        "progress": {"epoch": 5, "epochs": 5, "batch": 26, "steps_per_epoch": 26, "step": 130},
    }
    assert format_progress(job) == "Epoch 5/5 26/26 (step 130)"
    assert not re.search(r"\b27/26\b", format_progress(job))
