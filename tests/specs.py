"""Tiny Keras job specs and data sets for tests: they live in :mod:`testbed.specs`, which
the benchmarks share, and are imported here under the names the tests use."""

from testbed.specs import blobs, mlp_model_json, mlp_spec, npz_bytes

__all__ = ["blobs", "mlp_model_json", "mlp_spec", "npz_bytes"]
