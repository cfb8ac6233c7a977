"""Engine and session factory; one transaction per unit of work."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.core.errors import Unavailable

_lock = threading.Lock()
_engines: dict[str, Engine] = {}
_factories: dict[str, sessionmaker] = {}
_read_factories: dict[str, sessionmaker] = {}


PG_CONNECT_ARGS = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30000,
}


def make_engine(url: str) -> Engine:
    """An engine with the settings fitfleet wants on each backend."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    # A connection that a network cut left half-open must fail, not hang a writer forever:
    # libpq's connect timeout and TCP keepalives bound both a connect and a silent peer.
    # Every checkout pings: after a database outage a pooled connection may hang instead of
    # failing (a faulted run stuck a checkpoint commit), so none is reused unchecked.
    return create_engine(
        url, pool_pre_ping=True, pool_size=5, max_overflow=10, connect_args=PG_CONNECT_ARGS
    )


def get_engine(url: str) -> Engine:
    """The process's engine for ``url`` (created once)."""
    with _lock:
        if url not in _engines:
            _engines[url] = make_engine(url)
            _factories[url] = sessionmaker(_engines[url], expire_on_commit=False)
            _read_factories[url] = sessionmaker(
                _engines[url].execution_options(isolation_level="AUTOCOMMIT"),
                expire_on_commit=False,
            )
        return _engines[url]


def dispose_all() -> None:
    """Drop pooled connections, e.g. after fork (Celery prefork children)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose(close=False)


@contextlib.contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A session whose transaction commits on success and rolls back on error."""
    get_engine(url)
    with _scope(_factories[url]()) as session:
        yield session


@contextlib.contextmanager
def read_scope(url: str) -> Iterator[Session]:
    """A session in autocommit: each statement is its own transaction, with no BEGIN and
    COMMIT round trips. For a hot path's single query (an API request's token check, a
    poll's series version); anything that needs two statements to agree uses
    :func:`session_scope`."""
    get_engine(url)
    with _scope(_read_factories[url]()) as session:
        yield session


@contextlib.contextmanager
def _scope(session: Session) -> Iterator[Session]:
    try:
        yield session
        session.commit()
    except Exception as exc:
        session.rollback()
        from sqlalchemy.exc import OperationalError

        if isinstance(exc, OperationalError):
            raise Unavailable(
                "the database is unavailable; its operator can run any fitfleet "
                "server command (e.g. `fitfleet db current`) to see why"
            ) from exc
        raise
    finally:
        session.close()
