"""Settings: environment parsing, defaults, and the example env file in deploy/."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from service.core import config
from service.core.config import Settings

ENV_EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / ".env.example"


def example_variables() -> dict[str, str]:
    """``NAME=value`` lines of deploy/.env.example, comments and blanks skipped."""
    out = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        m = re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line.strip())
        if m:
            out[m.group(1)] = m.group(2)
    return out


def test_values_are_typed():
    s = Settings.from_env(
        {
            "DATABASE_URL": "postgresql+psycopg://u@h/db",
            "FITFLEET_LEASE_SECONDS": "7.5",
            "FITFLEET_MAX_ATTEMPTS": "5",
            "FITFLEET_MAX_SPEC_BYTES": "1024",
            "FITFLEET_LOG_LEVEL": "DEBUG",
        }
    )
    assert s.database_url == "postgresql+psycopg://u@h/db"
    assert s.lease_seconds == 7.5 and isinstance(s.lease_seconds, float)
    assert s.max_attempts == 5 and isinstance(s.max_attempts, int)
    assert s.max_spec_bytes == 1024
    assert s.log_level == "DEBUG"


def test_defaults_and_empty_values(monkeypatch, tmp_path):
    monkeypatch.setenv("FITFLEET_HOME", str(tmp_path))
    s = Settings.from_env({"FITFLEET_LEASE_SECONDS": "", "FITFLEET_MAX_EPOCHS": ""})
    assert s.lease_seconds == 10.0 and s.heartbeat_seconds == 2.0
    assert s.max_attempts == 3 and s.max_epochs == 100_000
    assert s.broker_url == "filesystem://"
    assert s.database_url == f"sqlite:///{tmp_path / 'fitfleet.db'}"
    assert s.storage_url == (tmp_path / "store").as_uri()
    assert s.home == str(tmp_path)
    assert s.heartbeat_seconds < s.lease_seconds


def test_overrides_win_over_the_environment():
    s = Settings.from_env(
        {"FITFLEET_LEASE_SECONDS": "9"}, lease_seconds=1.5, broker_url="redis://127.0.0.1:6379/3"
    )
    assert s.lease_seconds == 1.5 and s.broker_url == "redis://127.0.0.1:6379/3"


def test_bad_number_is_refused():
    with pytest.raises(ValueError):
        Settings.from_env({"FITFLEET_MAX_ATTEMPTS": "three"})


def test_get_settings_is_cached_until_reset(monkeypatch):
    monkeypatch.setenv("FITFLEET_MAX_ATTEMPTS", "4")
    config.reset_settings()
    try:
        first = config.get_settings()
        monkeypatch.setenv("FITFLEET_MAX_ATTEMPTS", "6")
        assert config.get_settings() is first and first.max_attempts == 4
        config.reset_settings()
        assert config.get_settings().max_attempts == 6
    finally:
        config.reset_settings()


def test_every_setting_has_a_variable():
    names = Settings.variables()
    assert sorted(names.values()) == sorted(f.name for f in dataclasses.fields(Settings))
    standard = {"DATABASE_URL", "CELERY_BROKER_URL"}
    assert all(v in standard or v.startswith("FITFLEET_") for v in names)


def test_env_example_lists_exactly_the_settings():
    listed = example_variables()
    ours = {k for k in listed if not k.startswith("AWS_")}
    assert ours == set(Settings.variables())
    assert {
        "AWS_ENDPOINT_URL_S3",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
    } <= set(listed)


def test_env_example_values_parse():
    listed = example_variables()
    s = Settings.from_env(listed)
    for variable, name in Settings.variables().items():
        value = getattr(s, name)
        assert value == type(value)(listed[variable]), variable


def test_env_example_comments_every_variable():
    lines = ENV_EXAMPLE.read_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^[A-Z][A-Z0-9_]*=", line):
            assert i > 0 and lines[i - 1].startswith("# "), f"no comment above {line}"
