"""The fitfleet Keras callbacks, one small class per concern, as Keras's own are.

``position`` keeps where training is (:class:`~position.Position`, updated by the
:class:`~position.Tracker`); ``recorder`` writes every batch's and epoch's logs to the
database; ``handover`` carries the user callbacks' state across the ``fit`` calls of an
attempt and puts back what ``fit`` resets; ``checkpointer`` takes snapshots at the job's
cadence; ``timeline`` notes the first batch and each validation pass as job events;
``pruning`` reports a sweep trial's objective at each epoch end and stops it when the
pruner says so. Failures of side channels (the database, the object store) are logged and
retried; they never kill training.
"""
