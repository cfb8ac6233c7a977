"""What the tests and the benchmarks both need, importable without importing the test suite.

Local services on loopback (``services``: a free port, a PostgreSQL database of one's own),
tiny Keras job specs and data sets (``specs``) and real fitfleet processes driven over HTTP
(``stack``). It lives beside ``tests/`` and ``bench/`` rather than in either: ``bench/``
may not import ``tests/`` (that would run the suite's conftest, pytest and its fixtures,
inside a benchmark), and the tests should not depend on the benchmarks either. It is not
shipped: the distribution's packages are ``fitfleet``, ``service`` and ``workers`` only.
Nothing here imports pytest, Flask or Keras at import time.
"""
