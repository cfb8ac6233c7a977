"""Training with Keras: the only package of fitfleet that imports TensorFlow at import time.

``attempt`` drives one attempt of a job, with the build helpers and the fit loop of
``runner``; ``data`` turns a data location into batches whose order is a pure function of
(seed, epoch) (arrays, file formats, the download cache, streamed shards); ``callbacks``
(one class per concern) track the position, record metrics and take checkpoints; ``lease``
renews the lease and acts on cancel and loss; ``resume`` holds what exact resume needs
(``state``: what a ``.keras`` file does not hold; ``checkpoint``: snapshot, write, load;
``saver``: the background saver that uploads and commits); ``journal`` writes an attempt's
events (restored, first batch, validation passes) and its captured log lines from a thread.
"""
