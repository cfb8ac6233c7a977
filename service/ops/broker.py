"""What the broker holds: the number of messages waiting in each queue.

The one reader of queue depths, used by the fleet view, the Prometheus collector and the
reaper's lost-message check. On Redis, kombu keeps a queue with priorities as one list per
priority step, named ``<queue><sep><step>`` with the bare queue name for step 0; the steps
and the separator are the transport options of :func:`service.core.celery_config.celery_config`.
On the file broker each waiting message is one ``*.<queue>.msg`` file.
"""

from __future__ import annotations

import os

from service.core.celery_config import celery_config

DEFAULT_STEPS = (0, 3, 6, 9)  # kombu's own, when the transport options name none
DEFAULT_SEP = "\x06\x16"
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def queue_keys(queue: str, options: dict) -> list[str]:
    """The Redis lists kombu keeps for ``queue`` under transport ``options``."""
    steps = options.get("priority_steps") or DEFAULT_STEPS
    sep = options.get("sep", DEFAULT_SEP)
    return [f"{queue}{sep}{p}" if p else queue for p in steps]


def transport_options(broker_url: str, home: str) -> dict:
    """The kombu transport options fitfleet configures for ``broker_url``."""
    return celery_config(broker_url, home).get("broker_transport_options") or {}


def queue_depths(broker_url: str, home: str, queues: list[str]) -> dict[str, int] | None:
    """Messages waiting in each of ``queues``; None for a broker that cannot be counted.

    Raises what the broker client raises when the broker is away: callers decide what an
    unknown depth means to them.
    """
    if broker_url.startswith(REDIS_SCHEMES):
        return _redis_depths(broker_url, home, queues)
    if broker_url.startswith("filesystem://"):
        return _file_depths(home, queues)
    return None


def _redis_depths(broker_url: str, home: str, queues: list[str]) -> dict[str, int]:
    import redis

    options = transport_options(broker_url, home)
    client = redis.Redis.from_url(broker_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        pipe = client.pipeline(transaction=False)
        keys = {q: queue_keys(q, options) for q in queues}
        for q in queues:
            for key in keys[q]:
                pipe.llen(key)
        sizes = iter(pipe.execute())
        return {q: int(sum(next(sizes) for _ in keys[q])) for q in queues}
    finally:
        client.close()


def _file_depths(home: str, queues: list[str]) -> dict[str, int]:
    folder = transport_options("filesystem://", home)["data_folder_out"]
    names = os.listdir(folder) if os.path.isdir(folder) else []
    counts = dict.fromkeys(queues, 0)
    for name in names:
        if name.endswith(".msg"):
            queue = name.partition(".")[2][: -len(".msg")]
            if queue in counts:
                counts[queue] += 1
    return counts
