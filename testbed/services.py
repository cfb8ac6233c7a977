"""Local services for tests and benchmarks: a free port, a PostgreSQL database of one's own."""

from __future__ import annotations

import socket
import uuid

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
PG_BASE = "postgresql+psycopg://postgres@127.0.0.1:5432"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def create_pg_database(prefix: str = "fitfleet_test") -> str:
    """Create an empty database ``<prefix>_<hex>``; returns its SQLAlchemy URL."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{PG_BASE}/{name}"


def drop_pg_database(url: str) -> None:
    """Drop a database made by ``create_pg_database``, ending its connections first."""
    import psycopg

    from service.store import db

    engine = db._engines.pop(url, None)
    if engine is not None:
        engine.dispose()
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
