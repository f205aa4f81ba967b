"""Health rules (pure): data freshness, alert conditions and the anomalous-day verdict."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from observer.clock import KST
from observer.schema import (
    CoreStats,
    SlotAssignment,
    SlotCommand,
    SlotProgress,
    WriterStats,
    WsCollectorStats,
)
from observer.sessions import MarketSessions
from sinks.monitor.health import AMBER, GREEN, RED, HealthRules, Inputs
from sinks.monitor.stats import StatsBook
from testkit.config import make_config

THURSDAY = datetime(2026, 11, 26, 10, 27, tzinfo=KST)


def _rules(tmp: Path) -> tuple[HealthRules, StatsBook]:
    cfg = make_config(tmp, calendar={"use_chk_holiday": False})
    book = StatsBook(stale_s=30.0, monotonic=lambda: 0.0)
    return HealthRules(cfg, book, MarketSessions.from_config(cfg)), book


def _core(book: StatsBook, **fields: Any) -> None:
    book.feed(CoreStats(worker="observer", at=THURSDAY, **fields))


def _ws(book: StatsBook, **fields: Any) -> None:
    book.feed(WsCollectorStats(worker="ws-collector", at=THURSDAY, **fields))


def _alive(book: StatsBook, in_session: bool = True, **core: Any) -> None:
    _core(book, **core)
    book.feed(WriterStats(worker="writer", at=THURSDAY, fsync_p99_ms=2.0))
    _ws(book, connected=True, last_frame_age_s=0.2, in_session=in_session)


def test_missing_swing_sweep_turns_red_and_raises_its_alert(short_tmp: Path) -> None:
    rules, book = _rules(short_tmp)
    mark_1010 = THURSDAY.replace(minute=10, second=0)
    _alive(book, track_a_sweep_at=mark_1010, track_b_oldest_sample_age_s=0.4)
    report = rules.evaluate(Inputs(THURSDAY, 10.0, 30.0, 40.0, 0, None))  # 10:27: 10:20 is due (grace 5 min)
    assert report.status == RED and "swing_missing" in report.reasons
    assert "10:20" in report.details["swing_missing"]
    assert [a.key for a in report.alerts if a.active] == ["swing_missing"]
    _alive(book, track_a_sweep_at=mark_1010 + timedelta(minutes=10), track_b_oldest_sample_age_s=0.4)
    report = rules.evaluate(Inputs(THURSDAY + timedelta(seconds=5), 10.0, 30.0, 40.0, 0, None))
    assert report.status == GREEN and not [a for a in report.alerts if a.active]


def test_a_stalled_track_a_is_red_even_when_no_sweep_was_ever_seen(short_tmp: Path) -> None:
    rules, book = _rules(short_tmp)
    _alive(book, track_b_oldest_sample_age_s=0.4)  # the core has seen no sweep at all
    assert "swing_missing" not in rules.evaluate(Inputs(THURSDAY, 10.0, 30.0, 40.0, 0, None)).reasons
    later = THURSDAY + timedelta(seconds=301)  # the monitor has waited the grace: nothing came
    _alive(book, track_b_oldest_sample_age_s=0.4)
    report = rules.evaluate(Inputs(later, 10.0, 30.0, 40.0, 0, None))
    assert report.reasons.get("swing_missing") == RED and "none seen" in report.details["swing_missing"]
    # a restarted core reports nothing yet: the monitor remembers the newest mark it was told
    _alive(
        book,
        track_b_oldest_sample_age_s=0.4,
        track_a_sweep_at=later.replace(minute=30),
    )
    assert "swing_missing" not in rules.evaluate(Inputs(later, 10.0, 30.0, 40.0, 0, None)).reasons
    _core(book, track_b_oldest_sample_age_s=0.4)
    assert "swing_missing" not in rules.evaluate(Inputs(later, 10.0, 30.0, 40.0, 0, None)).reasons


def test_scalp_staleness_follows_the_sampling_window_of_the_level(short_tmp: Path) -> None:
    rules, book = _rules(short_tmp)
    _alive(book, track_b_oldest_sample_age_s=7.0)
    assert rules.evaluate(Inputs(THURSDAY, 10.0, 30.0, 40.0, 0, None)).reasons.get("scalp_stale") == RED
    # at level 2 a window is 2 s: 7 s is 3.5 windows, fresh enough (10 windows allowed)
    report = rules.evaluate(Inputs(THURSDAY + timedelta(seconds=1), 10.0, 30.0, 40.0, 2, None))
    assert "scalp_stale" not in report.reasons and report.reasons["mitigation"] == AMBER


def test_unknown_is_not_zero(short_tmp: Path) -> None:
    rules, _ = _rules(short_tmp)
    report = rules.evaluate(Inputs(THURSDAY, None, None, None, 0, None))
    assert report.reasons == {"stats_missing": AMBER}  # no core stats: unknown, not stale data
    assert report.values.track_b_rate is None and report.values.cpu_pct is None


def test_track_b_rate_needs_the_whole_window_then_alerts(short_tmp: Path) -> None:
    rules, book = _rules(short_tmp)
    at, expected, written = THURSDAY, 0, 0
    anomalous: list[list[str]] = []
    mark_1020 = THURSDAY.replace(minute=20, second=0)
    for step in range(70):  # one sample every 5 s, 85 % recorded
        _alive(
            book,
            track_b_oldest_sample_age_s=0.3,
            track_a_sweep_at=mark_1020,
            samples_expected=expected,
            samples_written=written,
        )
        report = rules.evaluate(Inputs(at, 10.0, 30.0, 40.0, 0, None))
        if report.anomalous:
            anomalous.append(report.anomalous)
        if step < 59:
            assert report.values.track_b_rate is None, step
        at += timedelta(seconds=5)
        expected += 20
        written += 17
    assert report.values.track_b_rate is not None and abs(report.values.track_b_rate - 0.85) < 1e-9
    assert report.reasons["track_b_rate_low"] == AMBER
    assert [a.key for a in report.alerts if a.active] == ["track_b_rate_low"]
    assert anomalous == [["scalp recording rate 85.0% < 97% for 5 min"]]  # once per day


def test_anomalous_day_is_reported_once_per_day(short_tmp: Path) -> None:
    rules, book = _rules(short_tmp)
    evening = THURSDAY.replace(hour=16)
    _ws(book, reconnects=3)
    assert rules.evaluate(Inputs(evening, 10.0, 30.0, 40.0, 0, None)).anomalous is None
    _ws(book, reconnects=23)
    report = rules.evaluate(Inputs(evening + timedelta(seconds=5), 10.0, 30.0, 40.0, 0, None))
    assert report.anomalous == ["WS reconnects 20 >= 20"]
    assert report.reasons == {}  # 20 is not yet "> 20" for the alert
    _ws(book, reconnects=30)
    report = rules.evaluate(Inputs(evening + timedelta(seconds=10), 10.0, 30.0, 40.0, 0, None))
    assert report.anomalous is None and report.reasons == {"ws_reconnects_high": AMBER}
    # the next trading day starts from zero
    friday = evening + timedelta(days=1)
    report = rules.evaluate(Inputs(friday, 10.0, 30.0, 40.0, 0, None))
    assert report.anomalous is None and rules.reconnects_today() == 0
    # disk > 80 % is red, alerted, and makes the day anomalous
    report = rules.evaluate(Inputs(friday + timedelta(seconds=5), 10.0, 30.0, 85.0, 0, None))
    assert report.reasons == {"disk_high": RED} and report.anomalous == ["disk usage 85.0 % > 80 %"]


def test_a_closed_day_checks_no_freshness(short_tmp: Path) -> None:
    rules, book = _rules(short_tmp)
    saturday = THURSDAY + timedelta(days=2)
    _alive(book, in_session=False, track_b_oldest_sample_age_s=999.0, track_b_silent_symbols=41)
    report = rules.evaluate(Inputs(saturday, 10.0, 30.0, 40.0, 0, None))
    assert report.status == GREEN and report.anomalous is None


def test_per_slot_totals_and_silent_symbol_events_stand_in_for_missing_figures(short_tmp: Path) -> None:
    """Without the core's oldest-sample age and silent count: its per-slot totals, the ws-collector's
    symbol_silent events; the writer's p99 is the disk latency, the ws-collector's window the session."""
    rules, book = _rules(short_tmp)
    evening = THURSDAY.replace(hour=20)  # closed hours by the calendar: the ws-collector says otherwise
    slots = SlotCommand(
        version=1,
        at=evening,
        slots=[SlotAssignment(slot_number=1, symbol="005930", rule="manual", since=evening)],
    )
    report = None
    for step in range(15):
        expected = step + 1
        _core(
            book,
            samples_expected=expected,
            samples_written=3,
            track_a_collection_rate=0.9,
            slots=[SlotProgress(slot_number=1, symbol="005930", expected=expected, written=3)],  # stuck
            slots_used=1,
            event_lag_max_s=0.25,
        )
        book.feed(WriterStats(worker="writer", at=THURSDAY, fsync_p99_ms=12.0, written={"scalp": 3}))
        _ws(book, connected=True, last_frame_age_s=None, in_session=True, reconnects=2)
        report = rules.evaluate(Inputs(evening + timedelta(seconds=step), 10.0, 30.0, 40.0, 0, slots))
    assert report is not None
    assert report.values.disk_latency_ms == 12.0 and report.values.lag_s == 0.25
    assert report.values.slots_used == 1 and report.values.ws_connected is True
    assert (
        book.total(WriterStats, "written.scalp") == 0.0 and book.total(CoreStats, "samples_expected") == 14.0
    )
    assert rules.track_a_rate() == 0.9
    assert report.reasons == {"scalp_stale": RED}  # 13 windows unwritten > 10; no frame age = none
    # the ws-collector's symbol_silent events stand in for a silent-symbols gauge
    rules.note_silent_symbol("005930", evening)
    rules.note_silent_symbol("000660", evening)  # not in a slot: not counted
    report = rules.evaluate(Inputs(evening + timedelta(seconds=16), 10.0, 30.0, 40.0, 0, slots))
    assert report.reasons["symbols_silent"] == RED and "1 of 1" in report.details["symbols_silent"]
