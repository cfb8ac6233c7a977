"""Shared fixtures: real PostgreSQL, SQLite, Redis and an S3 endpoint (moto's server) on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass

import pytest

from testbed.services import create_pg_database, drop_pg_database, free_port

# A Redis database of this test session's own (1..10), so that two sessions on one machine
# do not consume each other's messages; CI runs one session at a time.
REDIS_URL = f"redis://127.0.0.1:6379/{1 + os.getpid() % 10}"
S3_BUCKET = "fitfleet-test"
TABLES = ("checkpoints", "metrics", "attempts", "jobs", "tokens", "workers", "projects", "sweeps")
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def migrated_sqlite(directory) -> str:
    """A SQLite file in ``directory`` migrated to the head revision; returns its URL."""
    from service.store.migrate import upgrade

    url = f"sqlite:///{directory / 'fitfleet.db'}"
    upgrade(url)
    return url


def embedded_settings(directory, **overrides):
    """Settings of the embedded default in ``directory``: a migrated SQLite file, a local
    store and the file broker, with a quick heartbeat and a long lease for in-process runs."""
    from service.core.config import Settings

    values = {
        "database_url": migrated_sqlite(directory),
        "home": str(directory),
        "storage_url": (directory / "store").as_uri(),
        "broker_url": "filesystem://",
        "heartbeat_seconds": 0.2,
        "lease_seconds": 30,
        **overrides,
    }
    return Settings.from_env({}, **values)


@pytest.fixture(scope="session")
def pg_url():
    """A fresh PostgreSQL database at the head revision, dropped after the session."""
    from service.store.migrate import upgrade

    url = create_pg_database()
    try:
        upgrade(url)
        yield url
    finally:
        drop_pg_database(url)


@pytest.fixture
def fresh_pg():
    """An empty PostgreSQL database (no migrations) of the test's own."""
    url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


@pytest.fixture
def pg_clean(pg_url):
    """Empty every fitfleet table of the session database before the test."""
    from sqlalchemy import text

    from service.store.db import get_engine

    with get_engine(pg_url).begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    return pg_url


@pytest.fixture
def sqlite_url(tmp_path):
    """A migrated SQLite database file of the test's own."""
    return migrated_sqlite(tmp_path)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request):
    """Each backend in turn: a migrated SQLite file, then the emptied PostgreSQL database."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("pg_clean")


@pytest.fixture
def redis_url():
    """The session's Redis database on loopback, flushed before the test."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    client.close()
    return REDIS_URL


@dataclass
class S3Server:
    """A running moto S3 server and the test bucket on it."""

    endpoint: str
    bucket: str
    process: subprocess.Popen

    def url(self, prefix: str = "") -> str:
        return f"s3://{self.bucket}/{prefix.strip('/')}".rstrip("/")

    def env(self) -> dict[str, str]:
        """The ``AWS_*`` variables a process needs to reach this server."""
        return {**S3_ENV, "AWS_ENDPOINT_URL_S3": self.endpoint}

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint)


def _wait_http(url: str, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"moto server did not answer at {url} within {timeout}s")


@pytest.fixture(scope="session")
def s3(tmp_path_factory):
    """moto's S3 server on a free loopback port, with bucket ``fitfleet-test``."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with open(tmp_path_factory.mktemp("moto") / "moto.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **S3_ENV},
        )
    saved = {k: os.environ.get(k) for k in (*S3_ENV, "AWS_ENDPOINT_URL_S3")}
    try:
        _wait_http(f"{endpoint}/moto-api/", process)
        server = S3Server(endpoint, S3_BUCKET, process)
        os.environ.update(server.env())
        server.client().create_bucket(Bucket=S3_BUCKET)
        yield server
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


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


@pytest.fixture(autouse=True)
def _logging_as_it_was():
    """Each test leaves the root logger as it found it: a command run in-process installs
    handlers on the stream pytest captured for that test, which is closed afterwards."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


SERVER_FIXTURES = frozenset({"pg_url", "pg_clean", "fresh_pg", "db_url", "redis_url", "s3"})


def pytest_collection_modifyitems(config, items):
    """``tests/unit`` runs with no server at all: a unit test that asks for PostgreSQL, Redis
    or the S3 server (directly or through a fixture) belongs in ``tests/integration``."""
    wrong = sorted(
        {
            item.nodeid.split("::")[0]
            for item in items
            if "tests/unit/" in item.nodeid.replace("\\", "/")
            and SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        }
    )
    if wrong:
        raise pytest.UsageError(
            f"these unit modules need a server; move them to tests/integration: {', '.join(wrong)}"
        )
