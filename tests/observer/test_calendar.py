"""Trading calendar: weekends, broker answers cached on disk, configured holidays as fallback."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from pathlib import Path

import pytest

from observer.calendar import TradingCalendar
from observer.clock import KST
from observer.config import ConfigError
from observer.sessions import MarketSessions
from testkit.config import make_config

FRI, SAT, SUN, MON, TUE = (
    date(2026, 3, 13),
    date(2026, 3, 14),
    date(2026, 3, 15),
    date(2026, 3, 16),
    date(2026, 3, 17),
)


def test_weekends_closed_and_configured_holidays_without_a_broker() -> None:
    cal = TradingCalendar(holidays=[MON])
    assert cal.is_trading_day(FRI)
    assert not cal.is_trading_day(SAT) and not cal.is_trading_day(SUN)
    assert not cal.is_trading_day(MON)
    assert cal.next_trading_day(FRI) == TUE
    assert cal.previous_trading_day(TUE) == FRI


def test_broker_answer_wins_and_is_cached_on_disk_once(tmp_path: Path) -> None:
    asked: list[date] = []

    def fetch(day: date) -> bool | None:
        asked.append(day)
        return day != TUE  # the broker knows Tuesday is a holiday the config does not list

    cache = tmp_path / "state" / "calendar.json"
    cal = TradingCalendar(holidays=[MON], fetch_holiday=fetch, cache_path=cache)
    assert cal.is_trading_day(MON)  # broker says open: the configured fallback does not apply
    assert not cal.is_trading_day(TUE)
    assert not cal.is_trading_day(SAT)  # weekends never reach the broker
    assert cal.is_trading_day(TUE) is False and cal.is_trading_day(MON)
    assert asked == [MON, TUE]
    assert cache.stat().st_mode & 0o777 == 0o600
    # a second process reads the cache and never asks
    other = TradingCalendar(fetch_holiday=lambda d: pytest.fail("asked again"), cache_path=cache)
    assert not other.is_trading_day(TUE) and other.is_trading_day(MON)
    assert other.source_of(TUE) == "broker"


def test_unknown_answer_falls_back_and_is_retried_only_after_the_interval(tmp_path: Path) -> None:
    now = [0.0]
    calls: list[date] = []

    def fetch(day: date) -> bool | None:
        calls.append(day)
        raise ConnectionError("broker down")

    cal = TradingCalendar(
        holidays=[MON],
        fetch_holiday=fetch,
        cache_path=tmp_path / "c.json",
        retry_unknown_s=60,
        monotonic=lambda: now[0],
    )
    assert not cal.is_trading_day(MON)
    assert cal.is_trading_day(TUE)
    assert cal.is_trading_day(TUE)
    assert calls == [MON, TUE]
    now[0] = 61
    assert cal.is_trading_day(TUE)
    assert calls == [MON, TUE, TUE]
    assert cal.source_of(TUE) == "configured"
    assert not (tmp_path / "c.json").exists()


def test_from_config_reads_holidays_and_rejects_bad_dates(short_tmp: Path) -> None:
    cfg = make_config(short_tmp, '[calendar]\nholidays = ["2026-03-16"]\nuse_chk_holiday = false\n')
    cal = TradingCalendar.from_config(cfg, fetch_holiday=lambda d: pytest.fail("disabled"))
    assert not cal.is_trading_day(MON)
    with pytest.raises(ConfigError, match=r"calendar\.holidays"):  # refused when the config is loaded
        make_config(short_tmp, '[calendar]\nholidays = ["16/03/2026"]\n')


def test_session_times_are_validated_at_load(short_tmp: Path) -> None:
    cfg = make_config(short_tmp, '[track_a]\nstart = "09:05"\nend = 15:20:00\n')
    assert (cfg.track_a.start, cfg.track_a.end) == (time(9, 5), time(15, 20))
    for bad, where in (
        ('[track_a]\nstart = "15:30"\nend = "09:00"', "track_a"),
        ('[track_b]\nend = "25:00"', "track_b.end"),
        ('[universe]\nbuild_at = "8:30"', "universe.build_at"),
        ('[housekeeping]\nbackup_at = "21:00:00+09:00"', "housekeeping.backup_at"),
        ("[track_a]\nsweep_interval_min = 0", "track_a"),
    ):
        with pytest.raises(ConfigError, match=re.escape(where)):
            make_config(short_tmp, bad)


def test_session_bounds_are_kst_aware(short_tmp: Path) -> None:
    sessions = MarketSessions.from_config(make_config(short_tmp))
    start, end = sessions.track_a_hours.on(FRI)
    assert start == datetime(2026, 3, 13, 9, 0, tzinfo=KST)
    assert end.utcoffset() is not None and (end - start).total_seconds() == 6.5 * 3600


def test_sweep_schedule_is_aligned_to_marks_and_bounded_by_the_session(short_tmp: Path) -> None:
    sessions = MarketSessions.from_config(make_config(short_tmp, "[calendar]\nuse_chk_holiday = false\n"))
    marks = sessions.sweep_marks(FRI)
    assert len(marks) == 40 and marks[0].hour == 9 and marks[-1] == datetime(2026, 3, 13, 15, 30, tzinfo=KST)
    at = datetime(2026, 3, 13, 10, 17, 59, tzinfo=KST)
    assert sessions.due_mark(at) == datetime(2026, 3, 13, 10, 10, tzinfo=KST)
    assert sessions.next_mark(at) == datetime(2026, 3, 13, 10, 20, tzinfo=KST)
    assert sessions.due_mark(datetime(2026, 3, 13, 8, 59, 59, tzinfo=KST)) is None
    assert sessions.due_mark(datetime(2026, 3, 13, 15, 39, tzinfo=KST)) == marks[-1]
    assert sessions.due_mark(datetime(2026, 3, 13, 15, 40, tzinfo=KST)) is None
    assert sessions.next_mark(datetime(2026, 3, 13, 15, 30, tzinfo=KST)) is None
    # a UTC instant is placed on the KST grid
    utc = datetime(2026, 3, 13, 1, 0, 1, tzinfo=UTC)  # 10:00:01 KST
    assert sessions.due_mark(utc) == datetime(2026, 3, 13, 10, 0, tzinfo=KST)
    assert (
        sessions.sweep_marks(SAT) == [] and sessions.due_mark(datetime(2026, 3, 14, 10, tzinfo=KST)) is None
    )
