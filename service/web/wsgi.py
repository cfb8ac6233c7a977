"""The WSGI entry point: ``gunicorn 'service.web.wsgi:app'`` (settings from the environment).

This is the one module-level app in the project. It is created on first access, so
importing this module does nothing else.
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_app = None


def __getattr__(name: str):
    """Create ``app`` on first access (PEP 562)."""
    global _app
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with _lock:
        if _app is None:
            from service.web.app import create_app

            _app = create_app()
    return _app
