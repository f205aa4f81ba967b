"""The first look at a symbol: aggregate fast-forward (cheap, deterministic, plausible, consistent)."""

from __future__ import annotations

import statistics
from datetime import datetime
from typing import Any

import pytest

from collectors.kis_sim.calendar import SimCalendar
from collectors.kis_sim.market import Market
from collectors.kis_sim.pricing import floor_to_tick
from collectors.kis_sim.state import Quote
from collectors.kis_sim.universe import Listing, build_listings
from observer.clock import KST, ManualClock

SEED = 20_260_101


@pytest.fixture(scope="module")
def listings() -> list[Listing]:
    return build_listings(SEED, 4_000)


def _at(hh: int, mm: int, ss: int = 0) -> datetime:
    return datetime(2026, 1, 5, hh, mm, ss, tzinfo=KST)


def _market(listings: list[Listing], at: datetime, seed: int = SEED) -> tuple[Market, ManualClock]:
    clock = ManualClock(at)
    return Market(listings, seed, clock, SimCalendar()), clock


def _consistent(q: Quote) -> None:
    assert q.lower <= q.low <= min(q.open, q.price) <= max(q.open, q.price) <= q.high <= q.upper, q
    for p in (q.open, q.high, q.low, q.price, q.bid, q.ask):
        assert p == floor_to_tick(p)
    assert q.lower <= q.bid < q.ask <= q.upper
    assert q.acml_vol >= q.trades > 0
    assert q.low <= q.acml_tr_pbmn / q.acml_vol <= q.high
    assert q.shnu_csnu + q.seln_csnu == q.trades and q.shnu_smtn + q.seln_smtn == q.acml_vol
    assert 9 * 3600 <= q.open_s <= q.last_trade_s <= q.at_s
    assert q.open_s <= q.high_s <= q.last_trade_s and q.open_s <= q.low_s <= q.last_trade_s


def test_first_look_late_in_the_day_is_cheap_and_consistent(listings: list[Listing]) -> None:
    m, _ = _market(listings, _at(14, 0))
    exact = 0
    step_one = m._trade

    def counting(*args: Any) -> None:
        nonlocal exact
        exact += 1
        step_one(*args)

    m._trade = counting  # type: ignore[method-assign]
    quotes = m.all_quotes()
    # cheap, counted in work rather than wall time (the machine may be loaded): the morning of ~10 M
    # trades is crossed in aggregate; only sparse stretches (< 40 expected trades) trade one by one
    assert exact < 160_000, f"the first look at 4,000 symbols at 14:00 stepped {exact} trades one by one"
    traded = [q for q in quotes if q.trades]
    assert len(traded) > 0.9 * len(quotes)
    for q in traded:
        _consistent(q)
    busy = [q for q in traded if q.listing.activity == "busy"]
    assert min(q.trades for q in busy) > 20_000  # the morning happened


def test_first_look_depends_only_on_its_minute(listings: list[Listing]) -> None:
    codes = [x.code for x in listings if x.activity in ("busy", "active")][:30]
    a, ca = _market(listings, _at(11, 0, 5))
    b, cb = _market(listings, _at(11, 0, 55))
    c, cc = _market(listings, _at(11, 1, 5))
    for m in (a, b, c):
        m.quotes(codes)
    for clock in (ca, cb, cc):
        clock.set(_at(11, 3))
    qa, qb, qc = a.quotes(codes), b.quotes(codes), c.quotes(codes)
    assert qa == qb
    assert qa != qc  # another minute, another (equally plausible) morning
    for q in qc.values():
        _consistent(q)


def test_trades_after_a_fast_forward_continue_its_totals(listings: list[Listing]) -> None:
    m, clock = _market(listings, _at(13, 17, 23))
    code = next(x.code for x in listings if x.activity == "busy")
    since = m.watch(code)
    q0 = m.quote(code)
    assert q0 is not None and since == q0.at_s and q0.trades > 10_000
    clock.advance(30)
    trades = m.pump()[code]
    assert trades and trades[0].at_s > since
    prev = q0.acml_vol
    for t in trades:
        assert t.acml_vol == prev + t.volume
        prev = t.acml_vol
        f = t.fields
        assert int(f[7]) == q0.open and int(f[8]) >= q0.high and int(f[9]) <= q0.low
    assert m.quote(code).trades == q0.trades + len(trades)  # type: ignore[union-attr]


def test_fast_forward_matches_the_exact_simulation_in_distribution() -> None:
    """The aggregate and the trade-by-trade processes, compared over a 2-hour morning."""
    exact: list[tuple[Quote, float]] = []
    fast: list[tuple[Quote, float]] = []
    for seed in (1, 2):
        universe = build_listings(seed, 1_000)
        codes = [x.code for x in universe if x.activity == "active"][:40]
        codes += [x.code for x in universe if x.activity == "quiet"][:100]
        ex, clock = _market(universe, _at(9, 0, 30), seed)
        ex.quotes(codes)  # first look before 09:01: the exact stream
        clock.set(_at(11, 0))
        ff, _ = _market(universe, _at(11, 0), seed)
        for m, out in ((ex, exact), (ff, fast)):
            out.extend((q, m._states[c].drift) for c, q in m.quotes(codes).items() if q.trades)

    def stats(rows: list[tuple[Quote, float]]) -> dict[str, float]:
        return {
            "trades": statistics.mean(q.trades for q, _ in rows),
            "volume_per_trade": statistics.mean(q.acml_vol / q.trades for q, _ in rows),
            "range": statistics.mean((q.high - q.low) / q.base for q, _ in rows),
            "close_sd": statistics.pstdev(q.price / q.base - 1 - d for q, d in rows),
            "quotes_per_trade": statistics.mean(q.quote_version / q.trades for q, _ in rows),
        }

    se, sf = stats(exact), stats(fast)
    assert len(exact) == len(fast) > 200
    for key, tolerance in (
        ("trades", 0.05),
        ("volume_per_trade", 0.25),
        ("range", 0.2),
        ("close_sd", 0.25),
        ("quotes_per_trade", 0.1),
    ):
        assert abs(sf[key] / se[key] - 1) < tolerance, (key, se[key], sf[key])


def test_watched_symbol_on_a_new_day_does_not_replay_its_morning(listings: list[Listing]) -> None:
    """The clock jumps over the night to 10:00: the new day's first look is history, not a burst."""
    m, clock = _market(listings, _at(15, 0))
    code = next(x.code for x in listings if x.activity == "busy")
    m.watch(code)
    clock.advance(5)
    assert m.pump()[code]
    clock.set(datetime(2026, 1, 6, 10, 0, 0, tzinfo=KST))
    assert m.pump() == {}  # the state of Jan 6 is created at 10:00, nothing retained before
    q0 = m.quote(code)
    assert q0 is not None and q0.day.isoformat() == "2026-01-06" and q0.trades > 10_000
    clock.advance(2)
    trades = m.pump()[code]
    assert trades[0].acml_vol - trades[0].volume == q0.acml_vol and trades[0].at_s > 10 * 3600
