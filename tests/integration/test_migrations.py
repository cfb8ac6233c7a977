"""Alembic migrations: upgrade from empty, one head, no drift from the models, round trip."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from service.core.errors import Unavailable
from service.store import migrate
from service.store.db import get_engine
from service.store.tables import Base

TABLES = {"jobs", "attempts", "metrics", "checkpoints"}


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fitfleet.db'}"
    return request.getfixturevalue("fresh_pg")


def tables(url: str) -> set[str]:
    return set(inspect(get_engine(url)).get_table_names())


def drift(url: str) -> list:
    with get_engine(url).connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(ctx, Base.metadata)


def test_exactly_one_head():
    assert len(migrate.heads()) == 1


def test_upgrade_from_empty(empty_url):
    migrate.upgrade(empty_url)
    assert TABLES <= tables(empty_url)
    assert migrate.current(empty_url) == migrate.heads()[0]
    migrate.check(empty_url)


def test_check_refuses_an_unmigrated_database(empty_url):
    get_engine(empty_url).connect().close()  # the database exists, with no tables
    assert migrate.current(empty_url) is None
    with pytest.raises(Unavailable):
        migrate.check(empty_url)


def test_models_and_migrations_agree(empty_url):
    migrate.upgrade(empty_url)
    assert drift(empty_url) == []


def test_downgrade_and_upgrade_round_trip(empty_url):
    migrate.upgrade(empty_url)
    migrate.downgrade(empty_url, "base")
    assert not TABLES & tables(empty_url)
    assert migrate.current(empty_url) is None
    migrate.upgrade(empty_url)
    assert TABLES <= tables(empty_url)
    assert migrate.current(empty_url) == migrate.heads()[0]
    assert drift(empty_url) == []
