"""Each validation and guard rule on recorded-shaped inputs (H0STCNT0 ticks, inquire-price snapshots)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from observer.clock import KST, ManualClock
from observer.core.rejections import RejectionReporter
from observer.core.rules import Finding, RuleBook, krx_tick_size
from observer.core.universe_day import DayUniverse
from observer.schema import QuoteSnapshot, SystemEvent, Tick
from testkit.config import make_config
from tests.observer.core.harness import write_universe

AT = datetime(2026, 11, 26, 10, 15, 0, tzinfo=KST)


def tick(**kw: Any) -> Tick:
    # shaped after a real H0STCNT0 record of 005930 (previous close 71,000)
    fields: dict[str, Any] = dict(
        symbol="005930",
        exchange_at=AT,
        received_at=AT + timedelta(milliseconds=40),
        price=71_500,
        change=500,
        open=71_000,
        high=71_800,
        low=70_900,
        trade_volume=12,
        cumulative_volume=3_215_004,
        cumulative_value=229_000_000_000,
        ask_price=71_600,
        bid_price=71_500,
        ask_size=1_204,
        bid_size=881,
    )
    fields.update(kw)
    return Tick(**fields)


def snap(**kw: Any) -> QuoteSnapshot:
    fields: dict[str, Any] = dict(
        provider="kis",
        market="KOSPI",
        symbol="005930",
        sweep_id="20261126T1010",
        exchange_at=None,
        received_at=AT,
        price=71_500,
        open=71_000,
        high=71_800,
        low=70_900,
        volume=3_215_004,
        value_krw=229_000_000_000,
        prev_close=71_000,
        upper_limit=92_300,
        lower_limit=49_700,
        bid_price=71_500,
        ask_price=71_600,
    )
    fields.update(kw)
    return QuoteSnapshot(**fields)


@pytest.fixture
def book(short_tmp: Path) -> RuleBook:
    cfg = make_config(short_tmp, '[provider]\nmarkets = ["KOSPI"]\n')
    write_universe(cfg, AT.date(), ["005930", "000660"], prev_close=71_000)
    return RuleBook(cfg, DayUniverse.load(cfg, AT.date()))


def rejected_rule(book: RuleBook, item: Tick | QuoteSnapshot) -> str | None:
    verdict = book.check_tick(item) if isinstance(item, Tick) else book.check_snapshot(item)
    return verdict.rejected.rule if verdict.rejected else None


def guard_rules(book: RuleBook, item: Tick | QuoteSnapshot) -> list[str]:
    verdict = book.check_tick(item) if isinstance(item, Tick) else book.check_snapshot(item)
    assert verdict.rejected is None, verdict.rejected
    return [g.rule for g in verdict.guards]


def test_clean_inputs_pass(book: RuleBook) -> None:
    assert guard_rules(book, tick()) == []
    assert guard_rules(book, snap()) == []


@pytest.mark.parametrize(
    ("item", "rule"),
    [
        (tick(symbol=""), "required_fields"),
        (tick(symbol="00 59!"), "required_fields"),
        (tick(received_at=datetime(2026, 11, 26, 10, 15)), "required_fields"),
        (tick(price=0), "price_positive"),
        (tick(low=0), "price_positive"),
        (tick(price=93_000, high=93_000, change=22_000), "limit_band"),
        (tick(price=49_000, low=49_000, change=-22_000), "limit_band"),
        (tick(high=71_000), "ohlc_order"),
        (tick(low=72_000), "ohlc_order"),
        (tick(trade_volume=-1), "volume_nonnegative"),
        (tick(bid_size=-3), "volume_nonnegative"),
        (tick(exchange_at=AT.replace(hour=8, minute=0)), "session_time"),
        (tick(exchange_at=AT - timedelta(days=1)), "session_time"),
        (tick(exchange_at=AT + timedelta(seconds=30)), "clock_skew"),
        (tick(symbol="123456"), "universe"),
        (snap(price=-5), "price_positive"),
        (snap(price=95_000, high=95_000), "limit_band"),
        (snap(high=70_000), "ohlc_order"),
        (snap(volume=-1), "volume_nonnegative"),
        (snap(symbol="999999"), "universe"),
        (snap(exchange_at=AT + timedelta(minutes=5)), "clock_skew"),
    ],
)
def test_each_validation_rule_rejects(book: RuleBook, item: Tick | QuoteSnapshot, rule: str) -> None:
    assert rejected_rule(book, item) == rule


def test_cumulative_volume_never_decreases(book: RuleBook) -> None:
    assert rejected_rule(book, tick(cumulative_volume=100)) is None
    assert rejected_rule(book, tick(cumulative_volume=99)) == "cumulative_volume"
    assert rejected_rule(book, snap(volume=100)) is None
    assert rejected_rule(book, snap(volume=50, sweep_id="later")) == "cumulative_volume"


def test_untraded_snapshot_with_zero_ohlc_is_valid(book: RuleBook) -> None:
    assert rejected_rule(book, snap(volume=0, open=0, high=0, low=0, price=71_000)) is None


def test_limit_band_uses_the_universe_when_the_input_has_no_reference(book: RuleBook) -> None:
    # snapshot without limits or previous close: ±30 % of the universe's previous close (71,000)
    assert rejected_rule(
        book, snap(prev_close=0, upper_limit=0, lower_limit=0, price=93_000, high=93_000)
    ) == ("limit_band")


def test_price_jump_guard_counts_krx_ticks(book: RuleBook) -> None:
    assert krx_tick_size(71_500) == 100 and krx_tick_size(1_999) == 1 and krx_tick_size(600_000) == 1_000
    assert guard_rules(book, tick(price=71_500, cumulative_volume=10)) == []
    assert guard_rules(book, tick(price=76_500, high=76_500, cumulative_volume=20)) == []  # 50 ticks: allowed
    assert guard_rules(book, tick(price=81_600, high=81_600, cumulative_volume=30)) == ["price_jump"]  # 51


def test_crossed_book_halted_repeated_and_stale_are_degraded_not_rejected(book: RuleBook) -> None:
    assert guard_rules(book, tick(bid_price=71_700, ask_price=71_600)) == ["crossed_book"]
    assert guard_rules(book, tick(halted=True, cumulative_volume=3_215_016)) == ["halted_trading"]
    assert guard_rules(book, tick(halted=True, cumulative_volume=3_215_016)) == ["repeated", "halted_trading"]
    old = AT - timedelta(minutes=30)
    assert "stale_snapshot" in guard_rules(book, snap(exchange_at=old, received_at=AT))
    assert guard_rules(book, snap(exchange_at=old, sweep_id="next")) == ["stale_snapshot", "repeated"]
    assert guard_rules(book, snap(halted=True, volume=3_300_000, sweep_id="n2")) == ["halted_trading"]


def test_no_universe_accepts_everything_with_one_notice(short_tmp: Path) -> None:
    cfg = make_config(short_tmp)
    uni = DayUniverse.load(cfg, AT.date())
    assert not uni.available
    assert [n.type for n in uni.notices].count("universe_unavailable") == 1
    verdict = RuleBook(cfg, uni).check_tick(tick(symbol="123456"))
    assert verdict.rejected is None and [g.rule for g in verdict.guards] == ["universe"]  # degraded


def test_universe_falls_back_to_an_earlier_snapshot_with_a_notice(short_tmp: Path) -> None:
    cfg = make_config(short_tmp, '[provider]\nmarkets = ["KOSPI"]\n')
    write_universe(cfg, AT.date() - timedelta(days=3), ["005930"])
    uni = DayUniverse.load(cfg, AT.date())
    assert uni.available and uni.contains("005930")
    assert [n.type for n in uni.notices] == ["universe_fallback"]


def test_rejection_events_are_rate_limited_with_summaries() -> None:
    clock = ManualClock(AT)
    made: list[SystemEvent] = []

    def make(type_: str, severity: str, message: str, details: dict[str, Any]) -> SystemEvent:
        event = SystemEvent(
            record_id=f"e{len(made)}",
            type=type_,
            severity=severity,  # type: ignore[arg-type]
            at=clock.now(),
            source="t",
            message=message,
            details=details,
        )
        made.append(event)
        return event

    reporter = RejectionReporter(10.0, clock, make)
    finding = Finding("limit_band", "price 1 outside", "005930")
    assert reporter.report("rejection", finding) is not None  # the first at once
    for _ in range(5):
        assert reporter.report("rejection", finding) is None
    assert reporter.due() == []
    clock.advance(10.0)
    (summary,) = reporter.due()
    assert summary.details["count"] == 5 and summary.details["symbols"] == ["005930"]
    assert reporter.counts["rejection.limit_band"] == 6
    assert msgspec.json.decode(msgspec.json.encode(summary), type=SystemEvent) == summary
