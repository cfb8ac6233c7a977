"""The control plane of fitfleet: everything that decides what runs and keeps the record.

``core`` holds what every process shares (settings, errors, logging, the Celery client that
sends tasks by name, the one room of private Keras calls); ``store`` is the SQL database
(tables, job state transitions, metrics and rollups, tokens, the fleet's rows, retention,
sweeps and their trials);
``storage`` is the object store (local directory or S3); ``admission`` is everything a
submission passes before a job row exists; ``sweeps`` runs hyperparameter searches whose
trials are jobs (spec and admission, the Optuna search, the controller, pruning verdicts);
``ops`` runs beside the API (the lease reaper, broker inspection, Prometheus figures);
``web`` is the Flask app, its ``api`` blueprints and the dashboard. Only ``web`` imports Flask; nothing imports the ``workers`` package, and
Keras is loaded lazily, only where a spec is validated.
"""
