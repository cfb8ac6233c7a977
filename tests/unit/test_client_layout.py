"""The user's side keeps its public names where users import them, in modules of a readable size."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import fitfleet
from fitfleet import client

PACKAGE = Path(fitfleet.__file__).resolve().parent


def test_the_public_names_stay_where_users_import_them():
    from fitfleet.run import History, Run
    from fitfleet.transport import FitfleetAPIError, FitfleetConnectionError

    assert fitfleet.Client is client.Client
    assert fitfleet.FitfleetAPIError is client.FitfleetAPIError is FitfleetAPIError
    assert (
        fitfleet.FitfleetConnectionError
        is client.FitfleetConnectionError
        is FitfleetConnectionError
    )
    assert fitfleet.Run is client.Run is Run and fitfleet.History is client.History is History
    assert client.ENDED == ("succeeded", "failed", "cancelled")
    assert client.DEFAULT_URL == "http://127.0.0.1:8000"
    assert set(client.__all__) <= set(vars(client))


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_every_module_is_under_300_lines_and_says_what_it_holds(path):
    source = path.read_text()
    assert len(source.splitlines()) <= 300, f"{path.name} is over 300 lines: split it"
    assert ast.get_docstring(ast.parse(source)), f"{path.name} has no module docstring"


def test_server_and_token_commands_word_a_database_failure_alike(monkeypatch):
    from sqlalchemy.exc import OperationalError

    from fitfleet.cli_checks import database_failure, server_command
    from fitfleet.cli_tokens import _guarded
    from service.core import config
    from service.core.errors import NotFound, Unavailable

    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://fit:s3cret@127.0.0.1:1/fitfleet")
    config.reset_settings()
    try:
        driver = OperationalError("SELECT 1", {}, ConnectionRefusedError("refused"))
        text = database_failure(driver)
        assert "fit:***@127.0.0.1:1" in text and "s3cret" not in text
        try:
            raise Unavailable("the database is unavailable") from driver
        except Unavailable as exc:
            assert database_failure(exc) == text
        assert (
            database_failure(Unavailable("schema at 0003; run `fitfleet db upgrade`"))
            == "schema at 0003; run `fitfleet db upgrade`"
        )
        assert database_failure(ValueError("x")) is None

        def fails(exc):
            def handler(args):
                raise exc

            return handler

        assert server_command(fails(driver))(None) == 1
        assert _guarded(fails(driver))(None) == 1
        with pytest.raises(NotFound):  # not a database failure: the server command raises it
            server_command(fails(NotFound("no such job")))(None)
        assert _guarded(fails(NotFound("no such token")))(None) == 1
    finally:
        config.reset_settings()
