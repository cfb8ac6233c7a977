"""Pooled PostgreSQL connections: pinged at checkout, replaced when dead."""

from __future__ import annotations

from sqlalchemy import text

from service.store import db


def _backend_pid(url: str) -> int:
    with db.read_scope(url) as s:
        return s.execute(text("SELECT pg_backend_pid()")).scalar_one()


def test_an_idle_connection_the_server_dropped_is_replaced_before_use(pg_url, monkeypatch):
    engine = db.make_engine(pg_url)
    with engine.connect() as conn:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    with db.get_engine(pg_url).connect() as other:
        other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    with engine.connect() as conn:  # the ping finds it gone; a fresh one answers
        assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
    engine.dispose()


def test_every_checkout_is_pinged(pg_url, monkeypatch):
    engine = db.make_engine(pg_url)
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    pings = []
    monkeypatch.setattr(engine.dialect, "do_ping", lambda conn: pings.append(conn) or True)
    for _ in range(3):
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    assert len(pings) == 3  # a connection an outage left hanging is never reused unchecked
    engine.dispose()


def test_read_scope_sends_no_begin_or_commit(pg_url):
    assert _backend_pid(pg_url) > 0
    with db.read_scope(pg_url) as s:
        assert s.connection().connection.driver_connection.autocommit
    with db.session_scope(pg_url) as s:
        assert not s.connection().connection.driver_connection.autocommit


def test_read_scope_on_sqlite_reads_and_writes_single_statements(sqlite_url):
    from service.store.tokens import TokenStore

    tokens = TokenStore(sqlite_url)
    secret = tokens.create("p1")[1]
    assert tokens.verify(secret).project == "p1"  # read_scope, with its last-use update
    assert tokens.verify("nope") is None
