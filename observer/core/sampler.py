"""The Track B sampler: one sample per watched symbol per window, even when nothing traded.

Windows are aligned to the clock and keyed by the tick's ``received_at``:
``window_start = floor(t / w) * w`` with ``w`` = 500 ms at mitigation level 0, 1 s at 1, 2 s at 2.
A level change takes effect at the next 2 s boundary (a boundary of every width), so windows never
overlap nor leave holes. A window closes when the clock passes ``window_end + core.sample_grace_ms``.

A sample carries the last trade state (the newest tick at or before the window's end) and the
window's trade count, volume, high, low and VWAP. Only windows starting inside Track B hours
(``track_b.start``–``track_b.end`` KST) are sampled. **Before a symbol's first known trade no sample
is written** (there is no state to carry) — unless Track A has seen the symbol: the latest REST
snapshot then seeds the state (`seed`, `tick_from_snapshot`), so a slot whose symbol has not traded
since it was subscribed still yields one sample per window (``trade_count`` 0, the snapshot's
exchange and receive times showing how old that state is). Windows with no state at all still count
as expected, so the collection rate shows them, and the silent-symbol check reports the symbol. After a core restart
the last durable state is restored from the checkpoint (`observer.core.checkpoint`), so the carried
samples continue exactly where the durable archive ends.

Ticks feeding an open window come with an opaque *hold* (the ingest message they came from); the
sample hands its holds back so the worker acknowledges those messages only once the sample is
durable. Holds of windows that are never sampled come back through `released`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Generic, TypeVar

from observer.clock import KST
from observer.schema import QuoteSnapshot, Tick
from observer.sessions import DailyWindow

H = TypeVar("H")
WIDTH_MS_BY_LEVEL = {0: 500, 1: 1_000, 2: 2_000}
_ALIGN_MS = 2_000  # every width divides it
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_ms(at: datetime) -> int:
    delta = at - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000 + delta.microseconds // 1_000


def from_ms(ms: int) -> datetime:
    return (_EPOCH + timedelta(milliseconds=ms)).astimezone(KST)


@dataclass(slots=True)
class WindowStats:
    trade_count: int = 0
    volume: int = 0
    high: int = 0
    low: int = 0
    value: int = 0  # sum of price * volume

    def add(self, price: int, volume: int) -> None:
        if self.trade_count == 0:
            self.high = self.low = price
        else:
            self.high = max(self.high, price)
            self.low = min(self.low, price)
        self.trade_count += 1
        self.volume += volume
        self.value += price * volume

    @property
    def vwap(self) -> float | None:
        return self.value / self.volume if self.volume > 0 else None


@dataclass(slots=True)
class Sample(Generic[H]):
    symbol: str
    provider: str
    market: str
    start: datetime
    end: datetime
    level: int
    last: Tick
    window: WindowStats
    guard_passed: bool
    holds: list[H]


@dataclass(slots=True)
class _Window(Generic[H]):
    stats: WindowStats = field(default_factory=WindowStats)
    last: Tick | None = None
    guard_passed: bool = True
    holds: list[H] = field(default_factory=list)


@dataclass(slots=True)
class _Symbol(Generic[H]):
    next_start_ms: int
    provider: str
    market: str
    carried: Tick | None = None
    stop_ms: int | None = None
    windows: dict[int, _Window[H]] = field(default_factory=dict)


class Sampler(Generic[H]):
    """Per-symbol windows; `add_tick` feeds, `due` closes. Pure logic: the clock is passed in."""

    def __init__(self, track_b_start: time, track_b_end: time, grace_ms: int):
        self._hours = DailyWindow(track_b_start, track_b_end)
        self._grace_ms = grace_ms
        self._levels: list[tuple[int, int]] = [(0, 0)]  # (effective_ms, level), ascending
        self._symbols: dict[str, _Symbol[H]] = {}
        self.released: list[H] = []  # holds of ticks whose window will never be sampled
        self.expected: dict[str, int] = {}
        self.emitted: dict[str, int] = {}
        self.no_state: dict[str, int] = {}
        self.late_ticks = 0

    # -- mitigation level
    @property
    def level(self) -> int:
        return self._levels[-1][1]

    def set_level(self, level: int, at: datetime) -> int:
        """Schedule `level` from the next 2 s boundary after `at`; returns that boundary (ms)."""
        level = max(0, min(2, level))
        if level == self.level:
            return self._levels[-1][0]
        effective_ms = -(-to_ms(at) // _ALIGN_MS) * _ALIGN_MS
        self._levels = [entry for entry in self._levels if entry[0] < effective_ms]
        self._levels.append((effective_ms, level))
        del self._levels[:-4]
        return effective_ms

    def level_at(self, ms: int) -> int:
        for effective_ms, level in reversed(self._levels):
            if effective_ms <= ms:
                return level
        return self._levels[0][1]

    def level_schedule(self) -> list[tuple[int, int]]:
        return list(self._levels)

    def restore_levels(self, schedule: list[tuple[int, int]]) -> None:
        if schedule:
            self._levels = sorted((int(a), max(0, min(2, int(b)))) for a, b in schedule)

    def window_of(self, ms: int) -> tuple[int, int]:
        width = WIDTH_MS_BY_LEVEL[self.level_at(ms)]
        start = ms // width * width
        return start, start + width

    # -- which symbols
    def watch(self, symbol: str, at: datetime, provider: str, market: str) -> None:
        st = self._symbols.get(symbol)
        if st is not None:
            st.stop_ms = None
            return
        start_ms, _ = self.window_of(to_ms(at))
        self._symbols[symbol] = _Symbol(next_start_ms=start_ms, provider=provider, market=market)

    def restore(self, symbol: str, next_start_ms: int, carried: Tick, provider: str, market: str) -> None:
        """Resume a symbol from its last durable sample (after a core restart)."""
        self._symbols[symbol] = _Symbol(
            next_start_ms=next_start_ms, provider=provider, market=market, carried=carried
        )

    def seed(self, state: Tick) -> None:
        """Give a watched symbol that has no state yet a last state to carry (a Track A snapshot)."""
        st = self._symbols.get(state.symbol)
        if st is not None and st.carried is None:
            st.carried = state

    def unwatch(self, symbol: str, at: datetime) -> None:
        """Stop sampling at the window containing `at` (windows before it are still written)."""
        st = self._symbols.get(symbol)
        if st is not None and st.stop_ms is None:
            st.stop_ms = self.window_of(to_ms(at))[1]

    def drop(self, symbol: str) -> None:
        """Forget a symbol now (a new trading day); holds of its open windows come back via `released`."""
        st = self._symbols.pop(symbol, None)
        if st is not None:
            for window in st.windows.values():
                self.released.extend(window.holds)

    def watching(self, symbol: str) -> bool:
        st = self._symbols.get(symbol)
        return st is not None and st.stop_ms is None

    def symbols(self) -> list[str]:
        return list(self._symbols)

    # -- ticks
    def add_tick(
        self, tick: Tick, *, guard_passed: bool, hold: H | None, provider: str = "", market: str = ""
    ) -> bool:
        """Feed one validated tick. True when an open window now holds `hold`."""
        st = self._symbols.get(tick.symbol)
        if st is None:
            return False
        if market:
            st.market = market
        if provider:
            st.provider = provider
        start_ms, _ = self.window_of(to_ms(tick.received_at))
        if st.stop_ms is not None and start_ms >= st.stop_ms:
            return False
        if start_ms < st.next_start_ms or not self._in_hours(start_ms):
            if start_ms < st.next_start_ms:
                self.late_ticks += 1
            if st.carried is None or tick.received_at >= st.carried.received_at:
                st.carried = tick
            return False
        window = st.windows.get(start_ms)
        if window is None:
            window = st.windows[start_ms] = _Window()
        window.stats.add(tick.price, tick.trade_volume)
        if window.last is None or tick.received_at >= window.last.received_at:
            window.last = tick
        window.guard_passed = window.guard_passed and guard_passed
        if hold is not None:
            window.holds.append(hold)
        return hold is not None

    # -- closing windows
    def due(
        self, now: datetime, hold_before_ms: int | None = None, hold_from_ms: int | None = None
    ) -> list[Sample[H]]:
        """Samples of every window that has closed by `now`, in window order per symbol.

        Windows starting before `hold_before_ms` stay open (a restarted core waits for resends);
        so do windows starting at or after `hold_from_ms` (the feed went silent there)."""
        now_ms = to_ms(now)
        out: list[Sample[H]] = []
        for symbol in list(self._symbols):
            st = self._symbols[symbol]
            while True:
                start_ms = st.next_start_ms
                if st.stop_ms is not None and start_ms >= st.stop_ms:
                    for window in st.windows.values():
                        self.released.extend(window.holds)
                    del self._symbols[symbol]
                    break
                if not self._in_hours(start_ms):
                    skip_to = self._next_session_start_ms(start_ms)
                    if skip_to > now_ms:
                        break
                    self._skip(st, skip_to)
                    continue
                _, end_ms = self.window_of(start_ms)
                if now_ms < end_ms + self._grace_ms:
                    break
                if hold_before_ms is not None and start_ms < hold_before_ms:
                    break
                if hold_from_ms is not None and start_ms >= hold_from_ms:
                    break
                st.next_start_ms = end_ms
                sample = self._close(symbol, st, start_ms, end_ms)
                if sample is not None:
                    out.append(sample)
        return out

    def _close(self, symbol: str, st: _Symbol[H], start_ms: int, end_ms: int) -> Sample[H] | None:
        window = st.windows.pop(start_ms, None)
        self.expected[symbol] = self.expected.get(symbol, 0) + 1
        if window is not None and window.last is not None:
            st.carried = window.last
        if st.carried is None:
            self.no_state[symbol] = self.no_state.get(symbol, 0) + 1
            if window is not None:
                self.released.extend(window.holds)
            return None
        self.emitted[symbol] = self.emitted.get(symbol, 0) + 1
        return Sample(
            symbol=symbol,
            provider=st.provider,
            market=st.market,
            start=from_ms(start_ms),
            end=from_ms(end_ms),
            level=self.level_at(start_ms),
            last=st.carried,
            window=window.stats if window is not None else WindowStats(),
            guard_passed=window.guard_passed if window is not None else True,
            holds=window.holds if window is not None else [],
        )

    def discard(self, sample: Sample[H]) -> None:
        """Do not write `sample` after all (scalp recording paused): it counts as expected, not
        emitted, and its holds come back through `released`."""
        self.emitted[sample.symbol] = self.emitted.get(sample.symbol, 1) - 1
        self.released.extend(sample.holds)
        sample.holds = []

    def _skip(self, st: _Symbol[H], to_ms_: int) -> None:
        for start_ms in [s for s in st.windows if s < to_ms_]:
            window = st.windows.pop(start_ms)
            self.released.extend(window.holds)
            if window.last is not None and (
                st.carried is None or window.last.received_at >= st.carried.received_at
            ):
                st.carried = window.last
        st.next_start_ms = to_ms_

    def _in_hours(self, start_ms: int) -> bool:
        return self._hours.contains(from_ms(start_ms))

    def _next_session_start_ms(self, ms: int) -> int:
        return to_ms(self._hours.next_start(from_ms(ms)))


def tick_from_snapshot(snap: QuoteSnapshot) -> Tick:
    """A REST snapshot as a "last state" (no trade in it: ``trade_volume`` 0)."""
    return Tick(
        symbol=snap.symbol,
        exchange_at=snap.exchange_at or snap.received_at,
        received_at=snap.received_at,
        price=snap.price,
        change=snap.price - snap.prev_close if snap.prev_close else 0,
        open=snap.open,
        high=snap.high,
        low=snap.low,
        trade_volume=0,
        cumulative_volume=snap.volume,
        cumulative_value=snap.value_krw,
        ask_price=snap.ask_price,
        bid_price=snap.bid_price,
        ask_size=snap.ask_size,
        bid_size=snap.bid_size,
        halted=snap.halted,
    )
