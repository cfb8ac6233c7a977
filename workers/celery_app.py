"""The Celery application of the workers, configured from fitfleet's settings."""

from __future__ import annotations

from celery import Celery
from celery.signals import worker_process_init

from service.core.celery_config import celery_config
from service.core.config import get_settings


def make_app(settings=None) -> Celery:
    settings = settings or get_settings()
    app = Celery("fitfleet", broker=settings.broker_url, include=["workers.tasks"])
    app.conf.update(celery_config(settings.broker_url, settings.home))
    return app


app = make_app()


@worker_process_init.connect
def _after_fork(**_kwargs) -> None:
    """A forked pool child must not share its parent's database connections."""
    from service.store.db import dispose_all

    dispose_all()


from workers import presence  # noqa: F401 - the worker's row in the fleet view
