"""The Track B session window and the outage bookkeeping (pure logic)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from collectors.ws_report import OutageTracker
from observer.clock import KST
from observer.config import state_dir
from observer.sessions import MarketSessions
from testkit.config import make_config


def at(day: int, hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(2026, 11, day, hh, mm, ss, tzinfo=KST)


def test_window_follows_the_trading_calendar(short_tmp: Path) -> None:
    cfg = make_config(short_tmp, '[calendar]\nholidays = ["2026-11-27"]\n')
    now = [0.0]
    sched = MarketSessions.from_config(cfg, monotonic=lambda: now[0])
    assert not sched.track_b_open(at(26, 9, 29, 59))
    assert sched.track_b_open(at(26, 9, 30))
    assert sched.track_b_open(at(26, 14, 59, 59))
    assert not sched.track_b_open(at(26, 15, 0))
    assert not sched.track_b_open(at(27, 10, 0))  # configured holiday
    assert not sched.track_b_open(at(28, 10, 0))  # Saturday
    assert sched.track_b_open(at(30, 10, 0))  # Monday
    # another process (the rest-collector) learns from the broker that Monday is a holiday: the
    # cached answer closes this worker's window too, without a restart
    cache = state_dir(cfg) / "calendar.json"
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"2026-11-30": False}))
    assert sched.track_b_open(at(30, 10, 0, 1))  # re-read at most once a second
    now[0] = 1.0
    assert not sched.track_b_open(at(30, 10, 0, 2))


def test_margin_widens_the_window(short_tmp: Path) -> None:
    sched = MarketSessions.from_config(make_config(short_tmp))
    assert sched.track_b_open(at(26, 9, 29), margin_s=60)
    assert sched.track_b_open(at(26, 15, 0, 59), margin_s=60)
    assert not sched.track_b_open(at(26, 15, 1), margin_s=60)


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
