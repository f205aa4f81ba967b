"""Every validation and guard rule of the core, in one module.

A **validation** failure rejects the record: it never reaches swing/ or scalp/ (the raw frame is
still kept in raw/). A **guard** failure keeps the record with ``quality_flag = "degraded"`` and
``guard_passed = false``. Every finding is counted and reported (`observer.core.rejections`).

========================  ====================================================  ========  ========
rule id                   what it checks                                        severity  outcome
========================  ====================================================  ========  ========
required_fields           symbol non-empty and alphanumeric, times tz-aware      WARNING   reject
price_positive            price > 0 (and open/high/low > 0 once traded)          WARNING   reject
limit_band                price, high, low inside the day's limits: the          WARNING   reject
                          snapshot's own upper/lower limit, else ±30 % of the
                          previous close (snapshot, tick ``price - change``,
                          or the universe)
ohlc_order                low <= open, close <= high (once traded)               WARNING   reject
volume_nonnegative        volumes, values and sizes >= 0                         WARNING   reject
cumulative_volume         cumulative volume never decreases per symbol/track     WARNING   reject
session_time              exchange time on the receive day, inside               WARNING   reject
                          track_a.start..end ± core.session_margin_s (KST)
clock_skew                exchange time not ahead of receive time by more        WARNING   reject
                          than core.max_clock_skew_s
universe                  symbol in the day's universe                           WARNING   reject
universe (guard)          no universe snapshot exists at all: the symbol cannot  INFO      degrade
                          be checked, so the record is kept but degraded
price_jump                |price - last price| <= core.max_jump_ticks KRX ticks  INFO      degrade
stale_snapshot            snapshot exchange time not older than receive time     INFO      degrade
                          minus core.stale_snapshot_s
repeated                  not identical to the symbol's previous record          INFO      degrade
                          (same exchange time, volume and price)
crossed_book              bid <= ask when both are quoted                        INFO      degrade
halted_trading            a halted symbol shows no new trade volume              INFO      degrade
========================  ====================================================  ========  ========

State per symbol (last price, last cumulative volume, last snapshot) is updated by every record
that passed validation, degraded or not: a jump degrades the record at the jump, not the rest of
the day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from observer.clock import KST
from observer.config import Config
from observer.core.universe_day import DayUniverse
from observer.schema import QuoteSnapshot, Tick
from observer.sessions import DailyWindow

REJECT_RULES = (
    "required_fields",
    "price_positive",
    "limit_band",
    "ohlc_order",
    "volume_nonnegative",
    "cumulative_volume",
    "session_time",
    "clock_skew",
    "universe",
)
GUARD_RULES = ("price_jump", "stale_snapshot", "repeated", "crossed_book", "halted_trading")


@dataclass(frozen=True, slots=True)
class Finding:
    rule: str
    reason: str
    symbol: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """``rejected`` set: the record is dropped; otherwise ``guards`` lists what degraded it."""

    rejected: Finding | None
    guards: tuple[Finding, ...] = ()

    @property
    def guard_passed(self) -> bool:
        return not self.guards


def krx_tick_size(price: int) -> int:
    """KRX price tick (KOSPI and KOSDAQ share one table since 2023)."""
    if price < 2_000:
        return 1
    if price < 5_000:
        return 5
    if price < 20_000:
        return 10
    if price < 50_000:
        return 50
    if price < 200_000:
        return 100
    if price < 500_000:
        return 500
    return 1_000


@dataclass(slots=True)
class _SymbolState:
    last_price: int = 0
    tick_cum_volume: int = -1
    tick_key: tuple[datetime, int, int] | None = None
    snap_volume: int = -1
    snap_key: tuple[datetime | None, int, int] | None = None


class RuleBook:
    """Applies the rules above; keeps the per-symbol state they need. One per trading day."""

    def __init__(self, cfg: Config, universe: DayUniverse):
        self._core = cfg.core
        self._universe = universe
        self._hours = DailyWindow(cfg.track_a.start, cfg.track_a.end)
        self._margin_s = cfg.core.session_margin_s
        self._skew = timedelta(seconds=cfg.core.max_clock_skew_s)
        self._stale = timedelta(seconds=cfg.core.stale_snapshot_s)
        self._state: dict[str, _SymbolState] = {}

    # -- public
    def check_tick(self, tick: Tick) -> Verdict:
        prev_close = tick.price - tick.change if tick.price > 0 else 0
        rejected = (
            self._required(tick.symbol, tick.exchange_at, tick.received_at)
            or self._prices(
                tick.symbol, tick.price, tick.open, tick.high, tick.low, traded=tick.cumulative_volume > 0
            )
            or self._band(tick.symbol, tick.price, tick.high, tick.low, prev_close, 0, 0)
            or self._nonnegative(
                tick.symbol,
                tick.trade_volume,
                tick.cumulative_volume,
                tick.cumulative_value,
                tick.ask_price,
                tick.bid_price,
                tick.ask_size,
                tick.bid_size,
            )
            or self._times(tick.symbol, tick.exchange_at, tick.received_at)
            or self._in_universe(tick.symbol)
        )
        state = self._state.setdefault(tick.symbol, _SymbolState())
        if rejected is None and tick.cumulative_volume < state.tick_cum_volume:
            rejected = Finding(
                "cumulative_volume",
                f"cumulative volume fell from {state.tick_cum_volume} to {tick.cumulative_volume}",
                tick.symbol,
            )
        if rejected is not None:
            return Verdict(rejected)
        guards = self._unchecked_universe(tick.symbol)
        self._jump(tick.symbol, tick.price, state, guards)
        key = (tick.exchange_at, tick.cumulative_volume, tick.price)
        if state.tick_key == key and tick.trade_volume > 0:
            guards.append(Finding("repeated", "tick identical to the previous one", tick.symbol))
        self._book(tick.symbol, tick.bid_price, tick.ask_price, guards)
        if tick.halted and tick.trade_volume > 0:
            guards.append(Finding("halted_trading", f"halted symbol traded {tick.trade_volume}", tick.symbol))
        state.last_price = tick.price
        state.tick_cum_volume = tick.cumulative_volume
        state.tick_key = key
        return Verdict(None, tuple(guards))

    def check_snapshot(self, snap: QuoteSnapshot) -> Verdict:
        exchange_at = snap.exchange_at
        rejected = (
            self._required(snap.symbol, exchange_at, snap.received_at)
            or self._prices(snap.symbol, snap.price, snap.open, snap.high, snap.low, traded=snap.volume > 0)
            or self._band(
                snap.symbol,
                snap.price,
                snap.high,
                snap.low,
                snap.prev_close,
                snap.upper_limit,
                snap.lower_limit,
            )
            or self._nonnegative(
                snap.symbol,
                snap.volume,
                snap.value_krw,
                snap.bid_price,
                snap.ask_price,
                snap.bid_size,
                snap.ask_size,
                snap.prev_close,
                snap.upper_limit,
                snap.lower_limit,
            )
            or (self._times(snap.symbol, exchange_at, snap.received_at) if exchange_at is not None else None)
            or self._in_universe(snap.symbol)
        )
        state = self._state.setdefault(snap.symbol, _SymbolState())
        if rejected is None and snap.volume < state.snap_volume:
            rejected = Finding(
                "cumulative_volume", f"volume fell from {state.snap_volume} to {snap.volume}", snap.symbol
            )
        if rejected is not None:
            return Verdict(rejected)
        guards = self._unchecked_universe(snap.symbol)
        self._jump(snap.symbol, snap.price, state, guards)
        if exchange_at is not None and snap.received_at - exchange_at > self._stale:
            age_s = (snap.received_at - exchange_at).total_seconds()
            guards.append(Finding("stale_snapshot", f"exchange time {age_s:.0f}s old", snap.symbol))
        key = (exchange_at, snap.volume, snap.price)
        if exchange_at is not None and state.snap_key == key:
            guards.append(Finding("repeated", "snapshot identical to the previous sweep's", snap.symbol))
        self._book(snap.symbol, snap.bid_price, snap.ask_price, guards)
        if snap.halted and state.snap_volume >= 0 and snap.volume > state.snap_volume:
            guards.append(
                Finding(
                    "halted_trading",
                    f"halted symbol volume grew by {snap.volume - state.snap_volume}",
                    snap.symbol,
                )
            )
        state.last_price = snap.price
        state.snap_volume = snap.volume
        state.snap_key = key
        return Verdict(None, tuple(guards))

    # -- validation helpers: each returns the first failure or None
    @staticmethod
    def _required(symbol: str, exchange_at: datetime | None, received_at: datetime) -> Finding | None:
        if not symbol or not symbol.isalnum() or len(symbol) > 12:
            return Finding("required_fields", f"bad symbol {symbol[:20]!r}", symbol[:20])
        if received_at.tzinfo is None or (exchange_at is not None and exchange_at.tzinfo is None):
            return Finding("required_fields", "timestamp without a UTC offset", symbol)
        return None

    @staticmethod
    def _prices(symbol: str, price: int, open_: int, high: int, low: int, *, traded: bool) -> Finding | None:
        if price <= 0:
            return Finding("price_positive", f"price {price} <= 0", symbol)
        if not traded and open_ == high == low == 0:
            return None  # no trade yet today: KIS reports 0 for open/high/low
        if min(open_, high, low) <= 0:
            return Finding("price_positive", f"open/high/low {open_}/{high}/{low} not all > 0", symbol)
        if not (low <= open_ <= high and low <= price <= high):
            return Finding("ohlc_order", f"o/h/l/c {open_}/{high}/{low}/{price} out of order", symbol)
        return None

    def _band(
        self, symbol: str, price: int, high: int, low: int, prev_close: int, upper: int, lower: int
    ) -> Finding | None:
        if upper <= 0 or lower <= 0:
            base = prev_close if prev_close > 0 else self._universe.prev_close(symbol)
            if base <= 0:
                return None  # no reference: the band cannot be checked (counted by the caller's stats)
            upper, lower = base * 13 // 10, -((-base * 7) // 10)
            upper += krx_tick_size(upper)  # KRX rounds limits to the tick: allow one tick of slack
            lower -= krx_tick_size(lower)
        for name, value in (("price", price), ("high", high), ("low", low)):
            if value > 0 and not lower <= value <= upper:
                return Finding("limit_band", f"{name} {value} outside [{lower}, {upper}]", symbol)
        return None

    @staticmethod
    def _nonnegative(symbol: str, *values: int) -> Finding | None:
        if min(values) < 0:
            return Finding("volume_nonnegative", f"negative volume/value/size {min(values)}", symbol)
        return None

    def _times(self, symbol: str, exchange_at: datetime | None, received_at: datetime) -> Finding | None:
        if exchange_at is None:
            return None
        exch = exchange_at.astimezone(KST)
        recv = received_at.astimezone(KST)
        if exch - recv > self._skew:
            ahead_s = (exch - recv).total_seconds()
            return Finding("clock_skew", f"exchange time {ahead_s:.1f}s ahead of receive time", symbol)
        start, end = self._hours.on(recv.date(), self._margin_s)
        if not start <= exch <= end:
            return Finding("session_time", f"exchange time {exch.isoformat()} outside the session", symbol)
        return None

    def _in_universe(self, symbol: str) -> Finding | None:
        if self._universe.available and not self._universe.contains(symbol):
            return Finding("universe", "symbol not in the day's universe", symbol)
        return None

    # -- guard helpers
    def _unchecked_universe(self, symbol: str) -> list[Finding]:
        if self._universe.available:
            return []
        return [Finding("universe", "no universe snapshot: symbol unchecked", symbol)]

    def _jump(self, symbol: str, price: int, state: _SymbolState, guards: list[Finding]) -> None:
        if state.last_price > 0:
            ticks = abs(price - state.last_price) // krx_tick_size(state.last_price)
            if ticks > self._core.max_jump_ticks:
                guards.append(
                    Finding("price_jump", f"{state.last_price} -> {price} is {ticks} ticks", symbol)
                )

    @staticmethod
    def _book(symbol: str, bid: int, ask: int, guards: list[Finding]) -> None:
        if bid > 0 and ask > 0 and bid > ask:
            guards.append(Finding("crossed_book", f"bid {bid} > ask {ask}", symbol))
