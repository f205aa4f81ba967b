"""Day names: the archive's ``YYYYMMDD`` and what an operator types."""

from __future__ import annotations

from datetime import date, datetime

import click
import pytest

from observer.clock import KST, ManualClock
from observer.days import day_key, day_of_key, day_option, parse_day


def test_day_keys_round_trip_and_only_day_keys_are_read_back() -> None:
    assert day_key(date(2026, 3, 6)) == "20260306"
    assert day_of_key("20260306") == date(2026, 3, 6)
    for name in ("20260230", "2026036", "202603061", "2026-03-06", "20260306\n", "2026O306", "٢٠٢٦٠٣٠٦"):
        assert day_of_key(name) is None, name


def test_an_operator_may_type_either_form() -> None:
    assert parse_day("20260306") == parse_day(" 2026-03-06 ") == date(2026, 3, 6)
    for text in ("2026-W10-5", "2026-3-6", "06.03.2026", "", "20260230"):
        with pytest.raises(ValueError):
            parse_day(text)


def test_a_day_option_defaults_to_today_in_kst_and_refuses_garbage() -> None:
    clock = ManualClock(datetime(2026, 3, 6, 23, 30, tzinfo=KST))
    assert day_option(None, clock) == date(2026, 3, 6)
    assert day_option("2026-03-05", clock) == date(2026, 3, 5)
    with pytest.raises(click.BadParameter, match=r"not a day \(YYYYMMDD or YYYY-MM-DD\): 'tomorrow'"):
        day_option("tomorrow", clock)
