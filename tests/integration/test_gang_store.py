"""The gang store's checks of tests/unit/test_gangs.py, on PostgreSQL."""

from __future__ import annotations

from tests.unit.test_gangs import (
    check_all_or_none,
    check_break_requeues_once,
    check_leave_and_rejoin,
    check_reap_breaks_silent_gang,
)


def test_all_or_none(pg_clean):
    check_all_or_none(pg_clean)


def test_leave_and_rejoin(pg_clean):
    check_leave_and_rejoin(pg_clean)


def test_break_requeues_once(pg_clean):
    check_break_requeues_once(pg_clean)


def test_reap_breaks_silent_gang(pg_clean):
    check_reap_breaks_silent_gang(pg_clean)
