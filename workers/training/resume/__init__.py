"""Exact resume: what a ``.keras`` file does not hold (``state``: seed generators, metric
variables, callback and RNG state), checkpoint snapshots written as files and loaded back
(``checkpoint``), and the background saver that uploads, commits and prunes (``saver``)."""
