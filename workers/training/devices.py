"""Devices and distribution: which devices a worker trains on, and the job's strategy.

A job with ``"distribute": "mirrored"`` trains under ``tf.distribute.MirroredStrategy``
on every GPU the worker sees (or, without GPUs, on the logical CPU devices that
``FITFLEET_CPU_DEVICES`` splits the CPU into). Checkpoints hold plain values, so a job
can resume under a strategy or without one.
"""

from __future__ import annotations

import contextlib
import logging

import tensorflow as tf

log = logging.getLogger("fitfleet.worker")


def configure(cpu_devices: int) -> None:
    """Split the CPU into ``cpu_devices`` logical devices; call before TensorFlow runs ops."""
    if cpu_devices <= 1:
        return
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(cpu_devices)]
        )
    except RuntimeError:
        log.warning("TensorFlow already started: cannot split the CPU into %d devices", cpu_devices)


def strategy_for(spec: dict):
    """The job's tf.distribute strategy, or None for plain single-device training."""
    if spec.get("distribute") != "mirrored":
        return None
    gpus = tf.config.list_logical_devices("GPU")
    devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
    log.info("training under MirroredStrategy on %s", ", ".join(devices))
    return tf.distribute.MirroredStrategy(devices=devices)


def scope(strategy):
    """``strategy.scope()``, or a no-op without a strategy."""
    return strategy.scope() if strategy is not None else contextlib.nullcontext()
