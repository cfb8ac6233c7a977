"""Celery settings shared by the API's sending client and the workers."""

from __future__ import annotations

import os


def celery_config(broker_url: str, home: str) -> dict:
    """Long-task settings: late acks, prefetch 1, one message per worker process."""
    conf = {
        "task_acks_late": True,
        "task_reject_on_worker_lost": False,
        "worker_prefetch_multiplier": 1,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_default_queue": "default",
        "broker_connection_retry_on_startup": True,
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "worker_hijack_root_logger": False,
    }
    if broker_url.startswith("filesystem://"):
        folder = os.path.join(home, "broker")
        for sub in ("out", "processed", "control"):
            os.makedirs(os.path.join(folder, sub), exist_ok=True)
        conf["broker_transport_options"] = {
            "data_folder_in": os.path.join(folder, "out"),
            "data_folder_out": os.path.join(folder, "out"),
            "processed_folder": os.path.join(folder, "processed"),
            "control_folder": os.path.join(folder, "control"),
            "store_processed": False,
        }
    else:
        # Priorities within a queue (Redis emulates them with sub-queues).
        conf["broker_transport_options"] = {
            "queue_order_strategy": "priority",
            "priority_steps": list(range(10)),
            "sep": ":",
            "visibility_timeout": 43200,
        }
    return conf
