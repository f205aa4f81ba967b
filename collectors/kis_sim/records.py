"""KIS real-time record layouts: H0STCNT0 trades (46 fields) and H0STASP0 orderbooks (62 fields).

A real H0STCNT0 record, for reference (KIS, 2023)::

    005930^112616^62700^2^400^0.64^62700.41^62700^63000^62300^62700^62600^125^9694968^
    607878273600^25807^15918^-9889^93.01^4614191^4291558^1^0.45^63.03^090013^3^0^090646^5^
    -300^100741^2^400^20230324^20^N^71292^244009^2795345^2044512^0.16^5367918^180.61^0^^62700

Differences (PRDY_VRSS, *_VRSS_PRPR, NTBY_CNTG_CSNU) carry a leading ``-`` when negative;
rates have two decimals; field 44 (MRKT_TRTM_CLS_CODE) is empty in continuous trading.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from collectors.kis_sim.pricing import change_sign, diff_sign, tick_down, tick_up
from collectors.kis_sim.universe import unit_hash

if TYPE_CHECKING:
    from datetime import date

    from collectors.kis_sim.state import Quote, SymbolState

H0STCNT0_FIELDS = 46
H0STASP0_FIELDS = 62
BOOK_LEVELS = 10


_HMS: dict[int, str] = {}


def _hms(seconds: float) -> str:
    s = int(seconds)
    text = _HMS.get(s)
    if text is None:
        text = _HMS[s] = f"{s // 3600:02d}{s % 3600 // 60:02d}{s % 60:02d}"  # at most 86,400 entries
    return text


def _rate(num: float, den: float) -> str:
    return f"{num / den * 100:.2f}" if den else "0.00"


class TradeRecordBuilder:
    """Formats H0STCNT0 records from a symbol's state at the instant of a trade."""

    def __init__(self) -> None:
        self._date_cache: dict[date, str] = {}

    def bsop_date(self, day: date) -> str:
        text = self._date_cache.get(day)
        if text is None:
            text = self._date_cache[day] = day.strftime("%Y%m%d")
        return text

    def h0stcnt0(self, st: SymbolState, qty: int, buy: bool, at_s: float) -> tuple[str, ...]:
        """The 46 fields for the trade of `qty` at ``st.price`` that just updated `st`."""
        price, base = st.price, st.base
        change = price - base
        elapsed = max(min((at_s - 9 * 3600) / (6.5 * 3600), 1.0), 1e-6)
        prdy_same_hour = int(st.prdy_vol * elapsed)
        return (
            st.listing.code,
            _hms(at_s),
            str(price),
            change_sign(price, base, st.upper, st.lower),
            str(change),
            _rate(change, base),
            f"{st.acml_pbmn / st.acml_vol:.2f}",
            str(st.open),
            str(st.high),
            str(st.low),
            str(st.ask),
            str(st.bid),
            str(qty),
            str(st.acml_vol),
            str(st.acml_pbmn),
            str(st.seln_csnu),
            str(st.shnu_csnu),
            str(st.shnu_csnu - st.seln_csnu),
            _rate(st.shnu_smtn, st.seln_smtn),
            str(st.seln_smtn),
            str(st.shnu_smtn),
            "1" if buy else "5",
            f"{st.shnu_smtn / st.acml_vol:.2f}",
            _rate(st.acml_vol, st.prdy_vol),
            _hms(st.open_s),
            diff_sign(price - st.open),
            str(price - st.open),
            _hms(st.high_s),
            diff_sign(price - st.high),
            str(price - st.high),
            _hms(st.low_s),
            diff_sign(price - st.low),
            str(price - st.low),
            self.bsop_date(st.day),
            "20",
            "N",
            str(st.ask_rsqn1),
            str(st.bid_rsqn1),
            str(st.total_ask),
            str(st.total_bid),
            _rate(st.acml_vol, st.listing.shares_listed),
            str(prdy_same_hour),
            _rate(st.acml_vol, prdy_same_hour),
            "0",
            "",
            str(base),
        )


def book_levels(q: Quote) -> tuple[list[int], list[int], list[int], list[int]]:
    """Ten ask and bid prices (0 beyond the daily limit) and their quantities.

    Level 1 quantities are the state's; deeper levels split the remaining total deterministically
    from (code, quote version), so REST and WS show the same book for the same state.
    """
    asks: list[int] = []
    bids: list[int] = []
    p = q.ask
    for _ in range(BOOK_LEVELS):
        asks.append(p if p <= q.upper else 0)
        p = tick_up(p)
    p = q.bid
    for _ in range(BOOK_LEVELS):
        bids.append(p if p >= q.lower else 0)
        p = tick_down(p) if p > 1 else 0
    ask_qty = _split(q.total_ask_rsqn, q.ask_rsqn1, q.listing.code, q.quote_version, "a", asks)
    bid_qty = _split(q.total_bid_rsqn, q.bid_rsqn1, q.listing.code, q.quote_version, "b", bids)
    return asks, bids, ask_qty, bid_qty


def _split(total: int, first: int, code: str, version: int, side: str, prices: list[int]) -> list[int]:
    weights = [unit_hash(code, version, side, i) + 0.2 if prices[i] else 0.0 for i in range(1, BOOK_LEVELS)]
    rest = max(total - first, 0)
    wsum = sum(weights) or 1.0
    out = [first] + [int(rest * w / wsum) for w in weights]
    remainder = total - sum(out)
    if remainder > 0:
        out[1 if prices[1] else 0] += remainder
    return out


def h0stasp0(q: Quote, at_s: float, bsop_hour_s: float | None = None) -> tuple[str, ...]:
    """The 62 fields of an orderbook record (59 documented + KMID_PRC, KMID_TOTAL_RSQN, KMID_CLS_CODE)."""
    asks, bids, ask_qty, bid_qty = book_levels(q)
    fields: list[str] = [q.listing.code, _hms(at_s if bsop_hour_s is None else bsop_hour_s), "0"]
    fields += [str(x) for x in asks]
    fields += [str(x) for x in bids]
    fields += [str(x) for x in ask_qty]
    fields += [str(x) for x in bid_qty]
    fields += [str(sum(ask_qty)), str(sum(bid_qty)), "0", "0"]
    fields += ["0", "0", "0", "0", "3", "0.00"]  # expected execution: none in continuous trading
    fields += [str(q.acml_vol), "0", "0", "0", "0", "0"]
    fields += [str((q.ask + q.bid) // 2), "0", "0"]
    assert len(fields) == H0STASP0_FIELDS
    return tuple(fields)
