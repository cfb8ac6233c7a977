"""The control plane of fitfleet.

A Flask-free core that workers may import (``config``, ``db``, ``models``, ``errors``,
``storage``, ``jobs`` state transitions, ``dispatch`` by task name, the lease ``reaper``)
and a web layer (``service.web``: app factory, ``api`` blueprints). Nothing here imports
TensorFlow, Keras or the ``workers`` package at import time.
"""
