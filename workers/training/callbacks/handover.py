"""Callbacks that carry the user callbacks' and metrics' state across ``fit`` calls."""

from __future__ import annotations

import keras

from workers.training.resume import state


class Handover(keras.callbacks.Callback):
    """Carries the user callbacks' state from one ``fit`` call of an attempt to the next.

    Placed before the user callbacks: at the end of a call that is not the attempt's last,
    it captures their state for :class:`Resume` and keeps EarlyStopping from restoring its
    best weights, which an uninterrupted run does only once, at the very end.
    """

    def __init__(self, user_callbacks, resume: Resume):
        super().__init__()
        self.user_callbacks, self.resume = user_callbacks, resume
        self.final = True  # set by the caller before each fit call

    def on_train_end(self, logs=None):
        if self.final or self.model.stop_training:
            return
        self.resume.callback_state = state.capture_callbacks(self.user_callbacks)
        state.stash_best_weights(self.user_callbacks)


class Resume(keras.callbacks.Callback):
    """Puts back what ``fit`` resets: callback counters after ``on_train_begin``, and the
    metric variables at the start of an interrupted epoch."""

    def __init__(self, user_callbacks):
        super().__init__()
        self.user_callbacks = user_callbacks
        self.callback_state: list[dict] | None = None
        self.metric_arrays: dict | None = None

    def on_train_begin(self, logs=None):
        state.restore_callbacks(self.user_callbacks, self.callback_state)
        self.callback_state = None

    def on_epoch_begin(self, epoch, logs=None):
        if self.metric_arrays is not None:
            state.restore_metrics(self.model, self.metric_arrays)
            self.metric_arrays = None
