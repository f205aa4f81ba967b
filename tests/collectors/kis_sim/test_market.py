"""The synthetic market: universe shape, price grid, determinism, invariants, session window."""

from __future__ import annotations

import io
import zipfile
from datetime import date, datetime, timedelta

import pytest

from collectors.kis_sim.calendar import SimCalendar
from collectors.kis_sim.market import Market
from collectors.kis_sim.master import KOSDAQ_TAIL, KOSPI_TAIL, master_zip, tail_offsets
from collectors.kis_sim.pricing import (
    ceil_to_tick,
    floor_to_tick,
    lower_limit,
    tick_down,
    tick_size,
    tick_up,
    upper_limit,
)
from collectors.kis_sim.records import H0STASP0_FIELDS, H0STCNT0_FIELDS, h0stasp0
from collectors.kis_sim.universe import build_listings, isin_for
from observer.clock import KST, ManualClock
from tests.collectors.kis_sim.conftest import MONDAY_0900

SEED = 20_260_101


@pytest.fixture(scope="module")
def listings() -> list:  # type: ignore[type-arg]
    return build_listings(SEED, 4_000)


def test_tick_sizes_and_limits() -> None:
    assert [tick_size(p) for p in (1_999, 2_000, 4_995, 5_000, 19_990, 20_000, 49_950, 50_000)] == [
        1,
        5,
        5,
        10,
        10,
        50,
        50,
        100,
    ]
    assert [tick_size(p) for p in (199_900, 200_000, 499_500, 500_000)] == [100, 500, 500, 1_000]
    assert tick_up(1_999) == 2_000 and tick_down(2_000) == 1_999 and tick_down(5_000) == 4_995
    assert upper_limit(10_000) == 13_000 and lower_limit(10_000) == 7_000
    assert upper_limit(73_500) == 95_500  # 95,550 truncated onto the 100 grid
    assert lower_limit(73_500) == 51_500  # 51,450 rounded up onto the 100 grid
    assert floor_to_tick(4_997) == 4_995 and ceil_to_tick(4_997) == 5_000


def test_universe_shape(listings: list) -> None:  # type: ignore[type-arg]
    codes = [x.code for x in listings]
    assert len(set(codes)) == len(codes) and 3_900 <= len(codes) <= 4_100
    assert all(len(c) == 6 and c.isdigit() for c in codes)
    share = sum(x.ref_close_krw >= 4_000 for x in listings) / len(listings)
    assert 0.60 <= share <= 0.72
    assert {x.market for x in listings} == {"KOSPI", "KOSDAQ"}
    groups = {x.group for x in listings}
    assert {"ST", "EF"} <= groups
    assert sum(x.halted for x in listings) == 1
    assert sum(x.activity == "busy" for x in listings) >= 41
    assert all(x.ref_close_krw == floor_to_tick(x.ref_close_krw) for x in listings)
    assert isin_for("005930") == "KR7005930003"  # Samsung Electronics' real ISIN
    assert build_listings(SEED, 4_000) == listings


def test_master_files_fixed_width(listings: list) -> None:  # type: ignore[type-arg]
    day = date(2026, 1, 5)
    bases = {x.code: x.ref_close_krw for x in listings}
    for market, tail_len in (("KOSPI", KOSPI_TAIL), ("KOSDAQ", KOSDAQ_TAIL)):
        name = "kospi_code.mst" if market == "KOSPI" else "kosdaq_code.mst"
        text = (
            zipfile.ZipFile(io.BytesIO(master_zip(listings, market, bases, day))).read(name).decode("cp949")
        )
        offsets = tail_offsets(market)
        rows = text.splitlines(keepends=True)
        assert len(rows) == sum(x.market == market for x in listings)
        by_code = {x.code: x for x in listings}
        groups = set()
        for row in rows:
            # exactly how the official sample cuts a row: the tail incl. the newline from the end
            part1, tail = row[: len(row) - (tail_len + 1)], row[-(tail_len + 1) : -1]
            code, isin, kor = part1[0:9].rstrip(), part1[9:21].rstrip(), part1[21:].strip()
            listing = by_code[code]
            assert isin == listing.isin and kor == listing.name
            o, w = offsets["group"]
            groups.add(tail[o : o + w])
            o, w = offsets["base"]
            assert int(tail[o : o + w]) == listing.ref_close_krw
            o, w = offsets["halt"]
            assert tail[o] == ("Y" if listing.halted else "N")
        assert "ST" in groups
    assert any(x.group != "ST" for x in listings) and any(x.ref_close_krw < 4_000 for x in listings)


def _market(listings: list, at: datetime = MONDAY_0900) -> tuple[Market, ManualClock]:  # type: ignore[type-arg]
    clock = ManualClock(at)
    return Market(listings, SEED, clock, SimCalendar()), clock


def test_deterministic_whatever_the_step(listings: list) -> None:  # type: ignore[type-arg]
    busy = [x.code for x in listings if x.activity == "busy"][:3]
    a, ca = _market(listings)
    b, cb = _market(listings)
    for code in busy:
        a.watch(code)
    b.quotes(busy)  # both first look at 09:00: the same exact trade stream from the open
    trades_a: dict[str, list] = {c: [] for c in busy}  # type: ignore[type-arg]
    for _ in range(600):
        ca.advance(0.1)
        for code, batch in a.pump().items():
            trades_a[code].extend(batch)
    cb.advance(60.0)
    for code in busy:
        qa, qb = a.quote(code), b.quote(code)
        assert qa == qb
        assert qa is not None and qa.trades == len(trades_a[code]) > 100


def test_trade_invariants(listings: list) -> None:  # type: ignore[type-arg]
    m, clock = _market(listings)
    code = next(x.code for x in listings if x.activity == "busy")
    m.watch(code)
    clock.advance(120)
    trades = m.pump()[code]
    base = m.quote(code).base  # type: ignore[union-attr]
    prev_vol, prev_pbmn = 0, 0
    for t in trades:
        f = t.fields
        assert len(f) == H0STCNT0_FIELDS
        price, vol, acml, pbmn = int(f[2]), int(f[12]), int(f[13]), int(f[14])
        assert acml == prev_vol + vol and pbmn == prev_pbmn + price * vol
        prev_vol, prev_pbmn = acml, pbmn
        assert int(f[4]) == price - base and f[45] == str(base)
        assert f[21] == ("1" if price == int(f[10]) else "5")
        assert price in (int(f[10]), int(f[11]))
        assert (
            int(f[26]) == price - int(f[7])
            and int(f[29]) == price - int(f[8])
            and int(f[32]) == price - int(f[9])
        )
        assert price == floor_to_tick(price) and lower_limit(base) <= price <= upper_limit(base)
        assert f[33] == "20260105" and f[34] == "20" and f[35] == "N" and f[43] == "0"
        assert "090000" <= f[1] <= "091000"


def test_session_window_and_halted(listings: list) -> None:  # type: ignore[type-arg]
    m, clock = _market(listings, MONDAY_0900 - timedelta(minutes=30))
    codes = [x.code for x in listings if x.activity == "busy"][:5]
    halted = next(x.code for x in listings if x.halted)
    assert all(q.trades == 0 and q.price == q.base for q in m.quotes(codes).values())
    clock.set(datetime(2026, 1, 5, 15, 29, 0, tzinfo=KST))
    before_close = {c: q.trades for c, q in m.quotes(codes).items()}
    clock.set(datetime(2026, 1, 5, 18, 0, 0, tzinfo=KST))
    after = m.quotes(codes)
    assert all(q.last_trade_s < 15.5 * 3600 for q in after.values())
    clock.set(datetime(2026, 1, 5, 19, 0, 0, tzinfo=KST))
    assert {c: q.trades for c, q in m.quotes(codes).items()} == {c: q.trades for c, q in after.items()}
    assert all(after[c].trades >= before_close[c] for c in codes)
    assert m.quote(halted).trades == 0  # type: ignore[union-attr]


def test_closed_day_has_no_trades(listings: list) -> None:  # type: ignore[type-arg]
    saturday = datetime(2026, 1, 10, 11, 0, 0, tzinfo=KST)
    m, _ = _market(listings, saturday)
    code = next(x.code for x in listings if x.activity == "busy")
    assert m.quote(code).trades == 0  # type: ignore[union-attr]
    holiday = Market(
        listings, SEED, ManualClock(datetime(2026, 1, 5, 11, tzinfo=KST)), SimCalendar([date(2026, 1, 5)])
    )
    assert holiday.quote(code).trades == 0  # type: ignore[union-attr]


def test_orderbook_record(listings: list) -> None:  # type: ignore[type-arg]
    m, clock = _market(listings)
    code = next(x.code for x in listings if x.activity == "busy")
    clock.advance(30)
    q = m.quote(code)
    assert q is not None
    f = h0stasp0(q, q.at_s)
    assert len(f) == H0STASP0_FIELDS
    assert (
        int(f[3]) == q.ask and int(f[13]) == q.bid and int(f[23]) == q.ask_rsqn1 and int(f[33]) == q.bid_rsqn1
    )
    asks = [int(x) for x in f[3:13] if x != "0"]
    assert asks == sorted(asks) and int(f[53]) == q.acml_vol


def test_bursts_make_surges(listings: list) -> None:  # type: ignore[type-arg]
    m, clock = _market(listings)
    busy = [x.code for x in listings if x.activity == "busy"]
    clock.set(datetime(2026, 1, 5, 15, 30, tzinfo=KST))
    from collectors.kis_sim.state import SymbolState

    state = SymbolState(m.by_code[busy[0]], date(2026, 1, 5), 10_000, SEED, True)
    rates = [s.rate_per_s for s in state.segments]
    assert max(rates) >= 3 * min(rates)
    assert any(s.max_jump_ticks > 1 for st in [state] for s in st.segments) or len(rates) >= 5


def test_watch_mid_session_publishes_only_later_trades(listings: list) -> None:  # type: ignore[type-arg]
    m, clock = _market(listings)
    code = next(x.code for x in listings if x.activity == "busy")
    clock.advance(600)
    m.watch(code)
    before = m.quote(code)
    assert before is not None and before.acml_vol > 0
    clock.advance(5)
    trades = m.pump()[code]
    assert trades[0].acml_vol - trades[0].volume == before.acml_vol
    assert trades[0].at_s > before.at_s
