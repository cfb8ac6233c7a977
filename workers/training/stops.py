"""How an attempt's training stopped, and the end of an epoch whose validation was cut short.

- A loss that is NaN or infinite when training stops (TerminateOnNaN stopped it, or it
  ran to the end diverged) fails the job with ``nan_loss``, naming the step.
- EarlyStopping stopping a job is a success; :func:`early_stop` says at which epoch and why.
- :func:`finish_epoch` replays what ``fit`` does after an epoch's last batch (validation,
  ``on_epoch_end``) for a resume from a checkpoint taken during an abandoned validation.
"""

from __future__ import annotations

import math

import keras

from workers.training.callbacks.position import Position
from workers.training.resume import state


def nan_message(pos: Position, user_callbacks) -> str | None:
    """Why the job failed if its newest loss is NaN or infinite, else None.

    Steps, epochs and batches are counted from 1, as Keras prints them.
    """
    if pos.last_loss is None or math.isfinite(pos.last_loss):
        return None
    step = pos.nonfinite_since or pos.step
    epoch, batch = divmod(step - 1, pos.steps_per_epoch)
    where = (
        f"the loss became {pos.last_loss} at step {step} (epoch {epoch + 1}, "
        f"batch {batch + 1} of {pos.steps_per_epoch})"
    )
    if any(isinstance(cb, keras.callbacks.TerminateOnNaN) for cb in user_callbacks):
        how = "TerminateOnNaN stopped training there"
    else:
        how = f"it was still {pos.last_loss} when training ended"
    return (
        f"{where}; {how}. Try a lower learning rate (or gradient clipping in the "
        "optimizer config), and check the data for NaN or infinite values."
    )


def early_stop(user_callbacks) -> dict | None:
    """Where and why EarlyStopping stopped the job (epochs counted from 1), or None."""
    for cb in user_callbacks:
        if not isinstance(cb, keras.callbacks.EarlyStopping) or not cb.stopped_epoch:
            continue
        best = None if cb.best is None else float(cb.best)
        best = best if best is not None and math.isfinite(best) else None
        restored = bool(cb.restore_best_weights and cb.best_weights is not None)
        reason = (
            f"{cb.monitor} did not improve by more than {abs(cb.min_delta):g} for "
            f"{cb.patience} epoch(s)"
        )
        if best is not None:
            reason += f" (best {best:.6g} at epoch {cb.best_epoch + 1})"
        if restored:
            reason += "; the weights of that epoch were restored"
        return {
            "by": "EarlyStopping",
            "epoch": cb.stopped_epoch + 1,
            "monitor": cb.monitor,
            "best": best,
            "best_epoch": cb.best_epoch + 1,
            "restored_best_weights": restored,
            "reason": reason,
        }
    return None


def finish_epoch(model, validation_data, batch_size: int, epoch: int, callbacks, resume_cb) -> None:
    """Validate epoch ``epoch`` (0-based) and end it, as ``fit`` would after its last batch.

    ``resume_cb`` holds the callback state and the training metrics of that moment (from
    the checkpoint); the callbacks see ``on_train_begin`` (which :class:`Resume` follows
    with the restore), the validation batches and ``on_epoch_end`` with the same logs an
    uninterrupted run gives them. If a callback stops training here, ``on_train_end``
    follows; otherwise the user callbacks' state is handed to the next ``fit`` call.
    """
    cbl = keras.callbacks.CallbackList(callbacks, model=model)
    model.stop_training = False
    cbl.on_train_begin()
    if resume_cb.metric_arrays is not None:
        state.restore_metrics(model, resume_cb.metric_arrays)
        resume_cb.metric_arrays = None
    logs = dict(model.get_metrics_result())
    if validation_data is not None:
        x, y, weights = keras.utils.unpack_x_y_sample_weight(validation_data)
        val = model.evaluate(
            x=x,
            y=y,
            sample_weight=weights,
            batch_size=batch_size,
            callbacks=cbl,
            return_dict=True,
            verbose=0,
        )
        logs.update({f"val_{k}": v for k, v in val.items()})
    cbl.on_epoch_end(epoch, logs)
    if model.stop_training:
        cbl.on_train_end(logs)
    else:
        resume_cb.callback_state = state.capture_callbacks(resume_cb.user_callbacks)
