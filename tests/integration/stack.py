"""Real fitfleet processes for end-to-end tests: they live in :mod:`testbed.stack`, which
the benchmarks share, and are imported here under the names the tests use."""

from testbed.stack import PYTHON, Stack, base_env, free_port, wait_for

__all__ = ["PYTHON", "Stack", "base_env", "free_port", "wait_for"]
