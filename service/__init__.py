"""The control plane of fitfleet.

A Flask-free core that workers may import (``config``, ``db``, ``models``, ``errors``,
``storage``, ``jobs`` state transitions, ``metrics``, ``dispatch`` by task name, the lease
``reaper``, ``retention``; admission of specs: ``spec``, ``modelspec``, ``policy``,
``limits``, ``shapes``; ``auth`` tokens; ``fleet`` and ``observability`` figures) and a web
layer (``service.web``: app factory, ``api`` blueprints, the dashboard). Nothing here imports
TensorFlow, Keras or the ``workers`` package at import time.
"""
