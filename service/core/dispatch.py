"""Hands jobs to the queue by task name; the API never imports the worker code."""

from __future__ import annotations

import functools

TRAIN_TASK = "fitfleet.train"


@functools.lru_cache(maxsize=4)
def _client(broker_url: str, home: str):
    from celery import Celery

    from service.core.celery_config import celery_config

    app = Celery("fitfleet-client", broker=broker_url, set_as_current=False)
    app.conf.update(celery_config(broker_url, home))
    return app


def broker_priority(priority: int) -> int:
    """A job's priority (0-9, higher runs first) as the broker's: Redis serves 0 first."""
    return 9 - max(0, min(9, int(priority)))


def enqueue(broker_url: str, home: str, job_id: str, queue: str, priority: int = 0) -> None:
    """Send the training task for ``job_id`` to ``queue``; the message carries only the id.

    Within a queue, a job of higher ``priority`` (0-9) is handed out first.
    """
    from service.core.errors import Unavailable

    try:
        _client(broker_url, home).send_task(
            TRAIN_TASK,
            args=[job_id],
            queue=queue,
            priority=broker_priority(priority),
            retry=True,
            retry_policy={
                "max_retries": 3,
                "interval_start": 0.2,
                "interval_step": 0.5,
                "interval_max": 1,
            },
        )
    except Exception as exc:  # kombu/redis errors vary by transport
        raise Unavailable("the job queue is unavailable") from exc


def warm(broker_url: str, home: str) -> None:
    """Build the queue client and connect it now, so that a later enqueue is quick."""
    app = _client(broker_url, home)
    with app.producer_or_acquire() as producer:
        producer.connection.ensure_connection(max_retries=1)


def wake(broker_url: str, home: str, job_id: str, queue: str, priority: int = 0) -> None:
    """Wake a worker of ``queue``: the message names a job that is claimable now, but the
    worker that takes it claims the queue's most deserving job (``service.store.scheduler``).
    """
    enqueue(broker_url, home, job_id, queue, priority)
