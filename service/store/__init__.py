"""The SQL database, the job's truth: engine and sessions (``db``), the tables (``tables``)
and their Alembic migrations (``migrate``), job creation, reads, cancel and the reaper's
sweeps (``jobs``), the worker's claim, lease and fenced writes (``leases``), lost attempts
(``lost``), metric rows and their rollups (``metrics``, ``rollups``, ``nonfinite``), API
tokens (``tokens``), the workers' presence rows (``fleet``), projects' weights and quotas
(``projects``), the scheduler that decides which job runs and which gives way
(``scheduler``), the views the API answers with (``views``, ``detail``), ``retention``, the
job event timeline (``events``), the workers' log lines (``worklogs``) and where a job's
wall time went (``goodput``), and hyperparameter sweeps with their trials and pruning
verdicts (``sweeps``). ORM rows never leave this package; callers get
plain dicts."""
