"""The Track B session window and the outage bookkeeping (pure logic)."""

from __future__ import annotations

from datetime import date, datetime

from collectors.kis.ws import SessionSchedule
from collectors.ws_report import OutageTracker
from observer.calendar import TradingCalendar
from observer.clock import KST


def at(day: int, hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(2026, 11, day, hh, mm, ss, tzinfo=KST)


def test_window_follows_the_trading_calendar() -> None:
    built: list[int] = []

    def factory() -> TradingCalendar:
        built.append(1)
        return TradingCalendar(holidays=[date(2026, 11, 27)])

    sched = SessionSchedule("09:30", "15:00", factory)
    assert not sched.in_session(at(26, 9, 29, 59))
    assert sched.in_session(at(26, 9, 30))
    assert sched.in_session(at(26, 14, 59, 59))
    assert not sched.in_session(at(26, 15, 0))
    assert not sched.in_session(at(27, 10, 0))  # configured holiday
    assert not sched.in_session(at(28, 10, 0))  # Saturday
    assert sched.in_session(at(30, 10, 0))  # Monday
    assert len(built) == 4  # once per KST day asked about, so cached broker answers are picked up


def test_margin_widens_the_window() -> None:
    sched = SessionSchedule("09:30", "15:00", TradingCalendar, margin_s=60)
    assert sched.in_session(at(26, 9, 29))
    assert sched.in_session(at(26, 15, 0, 59))


def test_one_outage_per_stretch_without_data() -> None:
    t = OutageTracker()
    s = 1_000_000_000
    assert t.frame(10 * s) is None
    t.lost("closed_by_server", ["B", "A"], 11 * s, 100.0)
    t.lost("connect_failed", ["A", "C"], 12 * s, 101.0)  # retries extend the same outage
    assert t.failing_for(105.0) == 5.0
    assert t.frame(int(10.5 * s)) is None  # still queued from before the loss: moves the start
    ended = t.frame(13 * s)
    assert ended is not None
    assert (ended.start_ns, ended.symbols, ended.reasons, ended.attempts) == (
        int(10.5 * s),
        ["A", "B", "C"],
        ["closed_by_server", "connect_failed"],
        2,
    )
    assert t.current is None and t.count == 1
