"""Schema management through Alembic: upgrade, current revision and the start-up check."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(database_url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    """Apply migrations up to ``revision``; creates a SQLite file's folder if needed."""
    from alembic import command

    if database_url.startswith("sqlite:///"):
        Path(database_url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(database_url), revision)


def heads() -> list[str]:
    from alembic.script import ScriptDirectory

    return list(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


def current(database_url: str) -> str | None:
    from service.store.db import get_engine

    with get_engine(database_url).connect() as conn:
        try:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except Exception:  # noqa: BLE001 - no alembic_version table (an empty database)
            return None


def check(database_url: str) -> None:
    """Refuse to start against a database that is not at the head revision."""
    from service.core.errors import Unavailable

    have, want = current(database_url), heads()
    if have not in want:
        raise Unavailable(
            f"database schema is at {have or 'nothing'}, expected {want[0]}; "
            "run `fitfleet db upgrade`"
        )
