"""Pruning decisions: each epoch's verdict for a trial is decided once and recorded.

The first verdict written for (job, epoch) wins; a resumed attempt that reaches an epoch
end it had passed reads the recorded verdict instead of asking the pruner again, so it
never gets a different one. The last epoch of a trial is never pruned (it is complete).
"""

from __future__ import annotations

from service.store.sweeps import SweepStore
from service.sweeps import search
from service.sweeps.controller import records


def decide(store: SweepStore, trial: dict, job_id: str, epoch: int, value: float) -> bool:
    """Whether ``job_id``'s trial stops after ``epoch`` (0-based) with objective ``value``."""
    known = store.decision(job_id, epoch)
    if known is not None:
        return known
    spec, rows = store.records(trial["sweep_id"])
    epochs = int(spec["base"]["fit"].get("epochs", 1))
    verdict, noted = False, {}
    if epoch + 1 < epochs:
        verdict, noted = search.prune(
            trial["sweep_id"], spec, records(rows), trial["number"], epoch + 1, value
        )
    return store.record_decision(trial["sweep_id"], job_id, epoch, value, verdict, noted)


def pruned_epoch(store: SweepStore, job_id: str) -> int | None:
    """The epoch (0-based) at whose end the trial was pruned, if it was."""
    for d in store.decisions(job_id):
        if d["prune"]:
            return d["epoch"]
    return None
