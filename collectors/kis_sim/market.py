"""The synthetic KRX market: per-symbol trade processes driven lazily by virtual time.

Promises:

* **Deterministic**: each symbol's day is one random stream seeded from (seed, code, date); the
  trades up to virtual time *t* are the same whatever the granularity of the calls that advanced
  the symbol there (the next arrival is drawn once and cached; Poisson arrivals are memoryless, so
  jumping to a rate boundary and redrawing is exact), as long as the symbol is watched or looked
  at at least every `AGGREGATE_AFTER_S`; an unwatched symbol looked at after a longer pause (a
  Track A sweep) crosses it in aggregate (`fastforward`): only its totals were ever visible.
* **First look**: a symbol's state is created when something first looks at it (a REST query, a
  WS subscription, the ground truth, the start-up `warm_up`). The trades before that instant were
  received by nobody, so they are not generated one by one: `fastforward` carries the state over
  the whole minutes since the open in aggregate, from a stream seeded by the minute of the first
  look, and the rest is traded exactly. A first look before 09:01 keeps the exact stream of the
  day; later, the day is a deterministic function of the seed and the minute of the first look.
* **Nothing published from before a subscription**: `watch` brings the symbol to now before it
  starts retaining trades, and says which instant that was, so the feed never replays history.
* **Lazy**: a symbol only advances when something looks at it (a REST query, the WS pump for
  watched symbols, the ground truth, the warm-up thread `Simulator` starts).
* **Session**: trades happen on open calendar days from 09:00:00 to 15:30:00 KST virtual time
  (the whole window is reported as the continuous session, ``hour_cls_code`` 0); outside it the
  state is frozen (before the open: price = previous close, no volume).
* **Invariants** (the protocol notes): every trade is at ASKP1 (buyer-initiated, CCLD_DVSN 1) or at
  BIDP1 (seller-initiated, 5); ACML_VOL grows by exactly the trade quantity and ACML_TR_PBMN by
  price x quantity; prices stay on the KRX tick grid inside the +-30 % limits.
* **One state, many views**: REST snapshots (`quote`) and WS trade records (`pump`) read the same
  state under one lock, so they always agree.

Activity (`activity`, where the calibration is written down): every symbol has a midday rate from
its rank in a long-tailed rank-activity law, shaped by a U-shaped intraday profile (several times
busier in the first and last half hour, lunch lull) and a few bursts per day (rate x3-8, bigger
trades, more volatile quotes: the volume surges and volatility spikes that Track B's triggers look
for), all times ``activity_scale``. Trades come as marketable orders filling several resting orders
at once (one record per fill, published together). The halted symbol never trades.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable, Sequence
from datetime import date, datetime, time, timedelta

from collectors.kis_sim.activity import MAX_FILLS
from collectors.kis_sim.calendar import SimCalendar
from collectors.kis_sim.fastforward import fast_forward
from collectors.kis_sim.pricing import tick_down, tick_size, tick_up
from collectors.kis_sim.records import TradeRecordBuilder
from collectors.kis_sim.state import (
    CLOSE_S,
    OPEN_S,
    SESSION_S,
    Quote,
    Segment,
    SymbolState,
    Trade,
    build_segments,
    hhmmss,
    seconds_of_day,
)
from collectors.kis_sim.universe import Listing, daily_close
from observer.clock import KST, Clock

__all__ = [
    "CLOSE_S",
    "OPEN_S",
    "SESSION_S",
    "Market",
    "Quote",
    "Segment",
    "SymbolState",
    "Trade",
    "build_segments",
    "hhmmss",
    "seconds_of_day",
]

_INF = float("inf")
FAST_FORWARD_GRID_S = 60
# an unwatched symbol looked at after this long (a Track A sweep every 10 min) is carried in
# aggregate: nobody receives its trades one by one, only the totals are visible
AGGREGATE_AFTER_S = 300.0


class Market:
    """The whole synthetic market. Thread-safe; every public method takes the market lock."""

    def __init__(
        self,
        listings: Sequence[Listing],
        seed: int,
        clock: Clock,
        calendar: SimCalendar,
        activity_scale: float = 1.0,
    ):
        self.activity_scale = activity_scale
        self.listings: tuple[Listing, ...] = tuple(listings)
        self.by_code: dict[str, Listing] = {x.code: x for x in self.listings}
        self.seed = seed
        self.clock = clock
        self.calendar = calendar
        self._lock = threading.RLock()
        self._day: date | None = None
        self._states: dict[str, SymbolState] = {}
        self._watch: dict[str, int] = {}
        self._records = TradeRecordBuilder()
        self.warmed_up = 0  # symbols `warm_up` has been through

    # ------------------------------------------------------------------ time

    def now(self) -> datetime:
        """Virtual time (KST)."""
        return self.clock.now().astimezone(KST)

    def is_open_at(self, at: datetime) -> bool:
        """Whether the continuous session is running at virtual time `at`."""
        s = seconds_of_day(at)
        return self.calendar.is_open(at.astimezone(KST).date()) and OPEN_S <= s < CLOSE_S

    def base_price(self, listing: Listing, day: date) -> int:
        """Previous close of `listing` as of `day` (the ``stck_sdpr`` base price)."""
        return daily_close(listing, self.seed, self.calendar.previous_open_day(day))

    def virtual_datetime(self, day: date, seconds: float) -> datetime:
        return datetime.combine(day, time(0), KST) + timedelta(seconds=seconds)

    # ------------------------------------------------------------------ views

    def quote(self, code: str, at: datetime | None = None) -> Quote | None:
        """The symbol advanced to `at` (default: now); None for an unknown code."""
        with self._lock:
            state = self._advance(code, self.now() if at is None else at)
            return None if state is None else state.snapshot()

    def quotes(self, codes: Iterable[str]) -> dict[str, Quote]:
        """Snapshots of the known codes among `codes`, all advanced to the same instant."""
        at = self.now()
        out: dict[str, Quote] = {}
        with self._lock:
            for code in codes:
                state = self._advance(code, at)
                if state is not None:
                    out[code] = state.snapshot()
        return out

    def all_quotes(self) -> list[Quote]:
        """Every symbol advanced to now (costly early in a day: used by volume-rank only)."""
        return list(self.quotes(self.by_code).values())

    # ------------------------------------------------------------------ WS feed

    def watch(self, code: str) -> float | None:
        """Start retaining the trades of `code` for `pump` (reference-counted).

        Returns the virtual second of day the symbol was advanced to (None for an unknown code):
        every trade `pump` hands over later for `code` is after it, except those already retained
        for earlier watchers, which are at or before it. Trades made before the first look at a
        symbol are never retained (see `_first_look`).
        """
        with self._lock:
            state = self._advance(code, self.now())
            self._watch[code] = self._watch.get(code, 0) + 1
            if state is None:
                return None
            if state.pending is None:
                state.pending = []
            return state.vt

    def unwatch(self, code: str) -> None:
        with self._lock:
            left = self._watch.get(code, 0) - 1
            if left > 0:
                self._watch[code] = left
                return
            self._watch.pop(code, None)
            state = self._states.get(code)
            if state is not None:
                state.pending = None

    def pump(self, at: datetime | None = None) -> dict[str, list[Trade]]:
        """Advance every watched symbol to `at` (default now) and hand over their new trades."""
        at = self.now() if at is None else at
        out: dict[str, list[Trade]] = {}
        with self._lock:
            for code in list(self._watch):
                state = self._advance(code, at)
                if state is not None and state.pending:
                    out[code] = state.pending
                    state.pending = []
        return out

    def warm_up(self, stop: threading.Event) -> int:
        """Give every symbol its first look now, one symbol per lock hold; returns how many.

        The fast-forward runs outside the lock on a private state, which is adopted only if
        nobody looked at the symbol meanwhile: the REST views and the WS pump are never held up.
        """
        done = 0
        for listing in self.listings:
            if stop.is_set():
                break
            self.warmed_up = done
            local = self.now()
            day, target = local.date(), min(seconds_of_day(local), float(CLOSE_S))
            with self._lock:
                known = day == self._day and listing.code in self._states
            if not known:
                state = self._first_look(listing, day, target)
                with self._lock:
                    if self._day is None or day > self._day:
                        self._day, self._states = day, {}
                    if day == self._day and listing.code not in self._states:
                        self._adopt(state)
            done += 1
        self.warmed_up = done
        return done

    # ------------------------------------------------------------------ internals

    def _advance(self, code: str, at: datetime) -> SymbolState | None:
        local = at.astimezone(KST)
        day = local.date()
        target = min(seconds_of_day(local), float(CLOSE_S))
        if day != self._day:
            self._day, self._states = day, {}
        state = self._states.get(code)
        if state is None:
            listing = self.by_code.get(code)
            if listing is None:
                return None
            return self._adopt(self._first_look(listing, day, target))
        if state.pending is None and target - state.vt > AGGREGATE_AFTER_S:
            fast_forward(state, target, self._step_to)  # nobody receives these trades
        else:
            self._step_to(state, target)
        return state

    def _adopt(self, state: SymbolState) -> SymbolState:
        code = state.listing.code
        self._states[code] = state
        if code in self._watch:
            state.pending = []
        return state

    def _first_look(self, listing: Listing, day: date, target_s: float) -> SymbolState:
        """A new state of `listing` for `day` brought to `target_s` with nothing retained.

        Nobody received the trades made before the first look, so they are not generated one by
        one: the whole minutes since the open are crossed by `fastforward.fast_forward` with a
        stream seeded from (seed, code, day, minute), then the last part minute is traded exactly.
        The state at any later instant is thus a function of the seed and of the minute of the
        first look (a first look before 09:01 keeps the day's exact trade stream).
        """
        state = SymbolState(
            listing,
            day,
            self.base_price(listing, day),
            self.seed,
            self.calendar.is_open(day),
            self.activity_scale,
        )
        minutes = int((target_s - OPEN_S) // FAST_FORWARD_GRID_S)
        if state.segments and minutes > 0:
            state.rng = random.Random(f"kis-sim-ff:{self.seed}:{listing.code}:{day.isoformat()}:{minutes}")
            fast_forward(state, OPEN_S + minutes * FAST_FORWARD_GRID_S, self._step_to)
        self._step_to(state, target_s)
        return state

    def _step_to(self, state: SymbolState, target: float) -> None:
        """Advance `state` trade by trade to `target` (retaining the trades if it is watched)."""
        if target <= state.vt:
            return
        segments = state.segments
        rng = state.rng
        while True:
            nxt = state.next_at
            if nxt is None:
                nxt = _INF
                t = max(state.vt, OPEN_S) if state.seg_idx == 0 else state.vt
                while state.seg_idx < len(segments):
                    seg = segments[state.seg_idx]
                    t = max(t, seg.start_s)
                    if seg.rate_per_s > 0:
                        candidate = t + rng.expovariate(seg.rate_per_s / seg.fills_mean)
                        if candidate < seg.end_s:
                            nxt = candidate
                            break
                    t = seg.end_s
                    state.seg_idx += 1
                state.next_at = nxt
            if nxt > target:
                break
            state.next_at = None
            state.vt = nxt
            self._order(state, segments[state.seg_idx], nxt)
        state.vt = target

    def _order(self, st: SymbolState, seg: Segment, at_s: float) -> None:
        """One marketable order: 1..MAX_FILLS fills on one side at the same instant (one record each)."""
        rng = st.rng
        buy = rng.random() < 0.5
        more = 1.0 - 1.0 / seg.fills_mean
        fills = 1
        while fills < MAX_FILLS and rng.random() < more:
            fills += 1
        for _ in range(fills):
            self._trade(st, seg, at_s, buy)

    def _trade(self, st: SymbolState, seg: Segment, at_s: float, buy: bool) -> None:
        rng = st.rng
        price = st.ask if buy else st.bid
        qty = int(st.listing.qty_scale * seg.volume_mult * rng.paretovariate(1.7))
        qty = min(max(qty, 1), int(st.listing.qty_scale * 400) + 1)
        st.price = price
        st.acml_vol += qty
        st.acml_pbmn += price * qty
        st.trades += 1
        st.last_trade_s = at_s
        if buy:
            st.shnu_csnu += 1
            st.shnu_smtn += qty
            st.ask_rsqn1 = max(st.ask_rsqn1 - qty, 0)
        else:
            st.seln_csnu += 1
            st.seln_smtn += qty
            st.bid_rsqn1 = max(st.bid_rsqn1 - qty, 0)
        if st.open == 0:
            st.open = st.high = st.low = price
            st.open_s = st.high_s = st.low_s = at_s
        elif price > st.high:
            st.high, st.high_s = price, at_s
        elif price < st.low:
            st.low, st.low_s = price, at_s
        if st.pending is not None:
            st.pending.append(
                Trade(
                    st.listing.code, at_s, price, qty, st.acml_vol, self._records.h0stcnt0(st, qty, buy, at_s)
                )
            )
        moved = rng.random() < seg.move_prob
        if moved or st.ask_rsqn1 == 0 or st.bid_rsqn1 == 0:
            self._move_quote(st, seg, buy, moved)

    def _move_quote(self, st: SymbolState, seg: Segment, buy: bool, moved: bool) -> None:
        rng = st.rng
        if moved:
            deviation = st.bid / st.base - 1.0 - st.drift
            p_up = 0.5 + (0.1 if buy else -0.1) - max(min(deviation * 3.0, 0.3), -0.3)
            steps = 1 if seg.max_jump_ticks == 1 else rng.randint(1, seg.max_jump_ticks)
            bid = st.bid
            if rng.random() < p_up:
                for _ in range(steps):
                    bid = tick_up(bid)
            else:
                for _ in range(steps):
                    bid = tick_down(bid)
            st.bid = min(max(bid, st.lower), tick_down(st.upper))
        elif st.ask_rsqn1 == 0:
            st.bid = min(st.ask, tick_down(st.upper))
        else:
            st.bid = max(tick_down(st.bid), st.lower)
        st.ask = st.bid + tick_size(st.bid)
        scale = st.listing.qty_scale
        st.ask_rsqn1 = int(scale * rng.uniform(3, 60)) + 1
        st.bid_rsqn1 = int(scale * rng.uniform(3, 60)) + 1
        st.total_ask = st.ask_rsqn1 * rng.randint(6, 14)
        st.total_bid = st.bid_rsqn1 * rng.randint(6, 14)
        st.quote_version += 1
