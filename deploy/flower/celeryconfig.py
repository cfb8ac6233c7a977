"""Celery settings for Flower (and `celery inspect`) against fitfleet's Redis broker.

Mounted as ``celeryconfig.py`` in the working directory of the ``flower`` service, where
Celery's default loader reads it; the broker URL comes from ``CELERY_BROKER_URL``. The
transport options must be the workers' own (service/core/celery_config.py; a test compares
them), or replies to remote-control commands land on keys nobody reads.
"""

broker_transport_options = {
    "queue_order_strategy": "priority",
    "priority_steps": list(range(10)),
    "sep": ":",
    "visibility_timeout": 43200,
}
accept_content = ["json"]
