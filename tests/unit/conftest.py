"""Fixtures of the unit layer: the real API served in-process, and a tiny model's JSON."""

from __future__ import annotations

import json
import threading

import pytest


@pytest.fixture(scope="module")
def model_json():
    """``json.loads(model.to_json())`` of a tiny Keras model (4 inputs, 3 classes)."""
    keras = pytest.importorskip("keras")
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3, activation="softmax")], name="tiny"
    )
    return json.loads(model.to_json())


@pytest.fixture
def served_api(tmp_path, sqlite_url):
    """``(url, settings, admin token)`` of the API on SQLite, a file store and the file
    broker, served by werkzeug on a free loopback port for the test."""
    web_app = pytest.importorskip("service.web.app")
    from werkzeug.serving import make_server

    from service.core.config import Settings
    from service.store.tokens import TokenStore

    settings = Settings.from_env(
        {},
        database_url=sqlite_url,
        broker_url="filesystem://",
        storage_url=(tmp_path / "store").as_uri(),
        home=str(tmp_path),
    )
    server = make_server("127.0.0.1", 0, web_app.create_app(settings), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        token = TokenStore(settings.database_url).create("test", admin=True)[1]
        yield f"http://127.0.0.1:{server.server_port}", settings, token
    finally:
        server.shutdown()
        thread.join(10)
