"""Training with Keras: the only package of fitfleet that imports TensorFlow at import time.

``runner`` drives one attempt of a job; ``data`` turns a data location into batches whose
order is a pure function of (seed, epoch); ``callbacks`` record metrics, renew the lease
and take checkpoints; ``checkpoint`` writes and restores them; ``state`` captures what a
``.keras`` file does not hold (seed generators, metric variables, callback and RNG state).
"""
