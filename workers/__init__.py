"""The data plane of fitfleet.

``workers.celery_app`` is the Celery application, ``workers.tasks`` the thin training task
(it carries a job id; the state is re-read from the database), ``workers.main`` starts
worker processes, and ``workers.training`` is where Keras lives: model building, data,
the fitfleet callbacks, checkpoints and exact resume. Workers import the core of
``service`` (settings, job store, metric store, object store), never its web layer.
"""
