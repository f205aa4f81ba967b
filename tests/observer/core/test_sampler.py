"""Sampler windows at 2 / 1 / 0.5 Hz with explicit times (the injected clock's readings)."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from observer.clock import KST
from observer.core.sampler import Sampler, tick_from_snapshot, to_ms
from observer.schema import QuoteSnapshot, Tick

T0 = datetime(2026, 11, 26, 10, 0, 0, tzinfo=KST)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def tick(s: float, price: int = 10_000, volume: int = 10, symbol: str = "005930", **kw: Any) -> Tick:
    return Tick(
        symbol=symbol,
        exchange_at=at(s),
        received_at=at(s),
        price=price,
        change=0,
        open=10_000,
        high=10_500,
        low=9_500,
        trade_volume=volume,
        cumulative_volume=0,
        cumulative_value=0,
        ask_price=price + 10,
        bid_price=price,
        **kw,
    )


def sampler(grace_ms: int = 100) -> Sampler[str]:
    s: Sampler[str] = Sampler(time(9, 30), time(15, 0), grace_ms)
    s.watch("005930", at(0), "kis", "KOSPI")
    return s


def test_two_hz_windows_with_vwap_high_low_and_empty_windows_carrying_the_last_state() -> None:
    s = sampler()
    assert s.add_tick(tick(0.10, 10_000, 10), guard_passed=True, hold="a")
    assert s.add_tick(tick(0.30, 10_100, 30), guard_passed=True, hold="b")
    assert s.add_tick(tick(1.20, 10_050, 5), guard_passed=True, hold="c")
    assert s.due(at(0.55)) == []  # window [0, 0.5) still in its grace
    out = s.due(at(2.0))
    assert [(x.start, x.end) for x in out] == [(at(0), at(0.5)), (at(0.5), at(1.0)), (at(1.0), at(1.5))]
    first, empty, third = out
    assert first.window.trade_count == 2 and first.window.volume == 40
    assert first.window.high == 10_100 and first.window.low == 10_000
    assert first.window.vwap == (10_000 * 10 + 10_100 * 30) / 40
    assert first.holds == ["a", "b"] and first.last.price == 10_100
    assert empty.window.trade_count == 0 and empty.window.vwap is None and empty.holds == []
    assert empty.last.price == 10_100  # carried
    assert third.last.price == 10_050 and third.holds == ["c"]
    assert s.expected["005930"] == 3 and s.emitted["005930"] == 3


def test_level_one_and_two_widen_windows_from_the_next_two_second_boundary() -> None:
    s = sampler()
    s.add_tick(tick(0.2), guard_passed=True, hold=None)
    assert s.set_level(1, at(0.7)) == to_ms(at(2.0))
    s.add_tick(tick(2.4), guard_passed=True, hold=None)
    assert s.set_level(2, at(3.1)) == to_ms(at(4.0))
    out = s.due(at(9.0))
    widths = [((x.end - x.start).total_seconds(), x.level) for x in out]
    assert widths == [(0.5, 0)] * 4 + [(1.0, 1)] * 2 + [(2.0, 2)] * 2
    assert [x.start for x in out][4:] == [at(2), at(3), at(4), at(6)]
    assert out[4].window.trade_count == 1


def test_no_sample_before_the_first_trade_but_the_window_is_expected() -> None:
    s = sampler()
    assert s.due(at(1.2)) == []
    assert s.expected["005930"] == 2 and s.no_state["005930"] == 2
    s.add_tick(tick(1.3), guard_passed=False, hold="x")
    (sample,) = s.due(at(1.9))
    assert sample.guard_passed is False and sample.window.trade_count == 1


def test_a_track_a_snapshot_seeds_a_symbol_that_has_not_traded_yet() -> None:
    s = sampler()
    snap = QuoteSnapshot(
        provider="kis",
        market="KOSPI",
        symbol="005930",
        sweep_id="20261126T1000",
        exchange_at=at(-2),
        received_at=at(-1),
        price=10_200,
        open=10_000,
        high=10_300,
        low=9_900,
        volume=5_000,
        value_krw=50_000_000,
        prev_close=10_000,
        bid_price=10_150,
        ask_price=10_200,
    )
    s.seed(tick_from_snapshot(snap))
    s.seed(tick(-5, price=1))  # a symbol with a state is never re-seeded
    out = s.due(at(1.2))
    assert [x.window.trade_count for x in out] == [0, 0]
    assert all(x.last.price == 10_200 and x.last.trade_volume == 0 for x in out)
    assert out[0].last.cumulative_volume == 5_000 and out[0].last.received_at == at(-1)
    assert s.emitted["005930"] == 2 and "005930" not in s.no_state
    s.add_tick(tick(1.3, price=10_250), guard_passed=True, hold=None)
    (sample,) = s.due(at(1.9))
    assert sample.last.price == 10_250 and sample.window.trade_count == 1
    s.seed(tick_from_snapshot(snap))  # unknown symbols are ignored
    assert s.symbols() == ["005930"]


def test_only_track_b_hours_are_sampled_and_earlier_trades_seed_the_state() -> None:
    s: Sampler[str] = Sampler(time(9, 30), time(15, 0), 100)
    early = datetime(2026, 11, 26, 9, 29, 59, tzinfo=KST)
    s.watch("005930", early, "kis", "KOSPI")
    t = tick(0)
    t = Tick(
        **{**{f: getattr(t, f) for f in t.__struct_fields__}, "received_at": early, "exchange_at": early}
    )
    assert not s.add_tick(t, guard_passed=True, hold="pre")  # outside hours: not held
    out = s.due(datetime(2026, 11, 26, 9, 30, 1, tzinfo=KST))
    assert [x.start.time() for x in out] == [time(9, 30)]
    assert out[0].window.trade_count == 0 and out[0].last.received_at == early
    late = datetime(2026, 11, 26, 15, 0, 0, 200_000, tzinfo=KST)
    s.add_tick(
        Tick(**{**{f: getattr(t, f) for f in t.__struct_fields__}, "received_at": late}),
        guard_passed=True,
        hold="after",
    )
    out = s.due(datetime(2026, 11, 26, 15, 10, tzinfo=KST))
    assert out[-1].end.time() == time(15, 0)


def test_late_ticks_are_counted_and_unwatch_releases_holds() -> None:
    s = sampler()
    s.add_tick(tick(0.1), guard_passed=True, hold="a")
    s.due(at(0.7))
    assert not s.add_tick(tick(0.2), guard_passed=True, hold="late")
    assert s.late_ticks == 1
    s.add_tick(tick(0.9), guard_passed=True, hold="b")
    s.unwatch("005930", at(0.6))  # stop after the window containing 0.6 -> [0.5, 1.0) is still written
    s.add_tick(tick(1.1), guard_passed=True, hold="c")
    out = s.due(at(3.0))
    assert [x.holds for x in out] == [["b"]]
    assert not s.watching("005930") and s.symbols() == []
