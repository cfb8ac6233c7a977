"""Sweeps: hyperparameter search whose trials are ordinary fitfleet jobs.

``spec`` checks a sweep spec (a base job spec, a space over paths into it, an objective, a
sampler, a pruner and the trial counts) and admits it: every path must exist in the base
spec, every range must be non-empty, the objective must be a metric the epoch logs will
hold, and the extremes of each range must give a job spec that passes the same admission
as a job. ``space`` reads and writes values at those paths. ``search`` is Optuna: a study
rebuilt in memory from fitfleet's own rows for each decision (no tables of its own), which
samples a trial's parameters and decides whether a trial is pruned. ``controller`` asks
for new trials (sampled and admitted outside any lock, then written with their jobs in a
transaction that locks the sweep row, then enqueued), keeps trial rows in step with their
jobs, and cancels sweeps.
``pruning`` records each epoch's verdict once, so a resumed trial replays it.
"""
