"""Reports a trial's objective at each epoch end and stops training when it is pruned."""

from __future__ import annotations

import logging

import keras

from service.store.sweeps import SweepStore
from service.sweeps import pruning
from workers.training.callbacks.position import Position
from workers.training.retry import retry

log = logging.getLogger("fitfleet.worker")


class Pruning(keras.callbacks.Callback):
    """At each real epoch end, the trial's objective goes to the pruner (through the
    database, first verdict wins); a prune verdict stops training after this epoch.

    Example:
        cb = Pruning.for_job(settings.database_url, job_id, position)  # None: not a trial
    """

    def __init__(self, store: SweepStore, trial: dict, job_id: str, position: Position):
        super().__init__()
        self.store, self.trial, self.job_id, self.pos = store, trial, job_id, position
        self.metric = trial["spec"]["objective"]["metric"]
        self.stopped_epoch: int | None = None  # 1-based, as Keras prints epochs

    @classmethod
    def for_job(cls, database_url: str, job_id: str, position: Position) -> Pruning | None:
        store = SweepStore(database_url)
        trial = retry(lambda: store.trial_of(job_id), f"job {job_id}: read its trial")
        return None if trial is None else cls(store, trial, job_id, position)

    def passed(self, start: int, validated: bool) -> bool:
        """Whether a resume at global step ``start`` is past the epoch where the trial was
        pruned: its checkpoint holds the model the prune left, so nothing more trains."""
        epoch = retry(lambda: pruning.pruned_epoch(self.store, self.job_id), "read verdicts")
        if epoch is None:
            return False
        end = (epoch + 1) * self.pos.steps_per_epoch
        if start > end or (start == end and validated):
            self.stopped_epoch = epoch + 1
            return True
        return False

    def on_epoch_end(self, epoch, logs=None):
        if self.pos.halted or self.stopped_epoch is not None:
            return
        value = (logs or {}).get(self.metric)
        if value is None:
            return
        value = float(value)
        verdict = retry(
            lambda: pruning.decide(self.store, self.trial, self.job_id, epoch, value),
            f"job {self.job_id}: pruning decision at epoch {epoch + 1}",
        )
        if verdict:
            log.info(
                "job %s: pruned after epoch %d (%s %s)", self.job_id, epoch + 1, self.metric, value
            )
            self.stopped_epoch = epoch + 1
            self.model.stop_training = True

    def stopped(self) -> dict | None:
        """The ``stopped`` summary of a pruned trial, or None."""
        if self.stopped_epoch is None:
            return None
        return {
            "by": "pruner",
            "epoch": self.stopped_epoch,
            "monitor": self.metric,
            "best": None,
            "reason": (
                f"the sweep's {self.trial['spec']['pruner']['name']} pruner stopped the trial "
                f"after epoch {self.stopped_epoch} ({self.metric})"
            ),
        }
