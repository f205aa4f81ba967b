"""Aggregate fast-forward: a symbol's state carried over a long stretch of its day without its trades.

Used once per symbol and day, when something first looks at the symbol (`Market._first_look`): the
trades made before anyone looked are history nobody receives, so only their *totals* matter (trade
count, ACML_VOL, ACML_TR_PBMN, buy/sell splits, OHLC with times, the quote, ``quote_version``).

Promises:

* **Cheap**: cost grows with the number of the quote's relaxation times in the stretch, not with the
  number of trades (a busy symbol's whole day is a few hundred arithmetic steps, not ~100,000 trades);
  a short or sparse stretch (fewer than `EXACT_BELOW_TRADES` expected trades over all of it) is
  simulated trade by trade through the caller's exact stepper, so quiet symbols keep their
  discrete character.
* **Deterministic**: everything is drawn from ``st.rng`` (seeded by the caller), nothing else.
* **Plausible**: the same process as the exact simulation, in distribution: Poisson trade counts,
  clipped-Pareto quantities (mean and variance matched), buyer/seller split 50/50, the bid following
  the mean-reverting tick walk of `market.Market._move_quote` (as an Ornstein-Uhlenbeck process in
  relative price, capped reversion beyond 10 % like the exact walk), high and low from the Brownian
  bridge between the sub-step's end points, prices on the tick grid inside the daily limits.
* **Invariants kept**: ``acml_vol >= trades``, ``low <= price <= high``, ``low <= open <= high``,
  ``bid < ask``, both within the limits; published records after the fast-forward continue from
  these totals exactly (ACML_VOL grows by CNTG_VOL per record).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from collectors.kis_sim.pricing import floor_to_tick, tick_down, tick_size
from collectors.kis_sim.state import OPEN_S

if TYPE_CHECKING:
    import random

    from collectors.kis_sim.state import Segment, SymbolState

EXACT_BELOW_TRADES = 40.0
# quantity law of `Market._trade`: int(qty_scale * volume_mult * Pareto(1.7)), clipped to [1, cap]
PARETO_ALPHA = 1.7
QTY_CAP_SCALES = 400
# the exact walk's reversion: p_up = 0.5 - clamp(3 * deviation, +-0.3)
REVERSION_GAIN = 3.0
REVERSION_CAP = 0.3
# quote moves forced by an exhausted best level (unbiased one-tick steps), per trade, measured
# on the exact simulation (tests/collectors/kis_sim/test_fastforward.py compares the two)
FORCED_MOVES_PER_TRADE = 0.02
# a sub-step spans about this many relaxation times of the reverting walk (bridge high/low hold)
SUBSTEP_RELAXATIONS = 0.5
MIN_SUBSTEP_TRADES = 60.0
# and at least this long: the cost of a busy symbol's morning stays bounded at any activity_scale
MIN_SUBSTEP_S = 30.0

ExactStepper = Callable[["SymbolState", float], None]


def fast_forward(st: SymbolState, until_s: float, step_exact: ExactStepper) -> None:
    """Carry `st` from ``st.vt`` to `until_s` (virtual seconds of day); nothing is published.

    `step_exact(st, t)` must advance `st` trade by trade to `t` from ``st.vt`` (drawing the next
    arrival afresh when ``st.next_at`` is None, from segment ``st.seg_idx``). On return ``st.vt``
    is `until_s`, no arrival is pending and ``st.seg_idx`` points at the segment holding `until_s`.
    """
    t = max(st.vt, OPEN_S)
    stretch = [
        (idx, seg, max(t, seg.start_s), min(seg.end_s, until_s))
        for idx, seg in enumerate(st.segments)
        if seg.end_s > t and seg.start_s < until_s
    ]
    if sum(seg.rate_per_s * (b - a) for _, seg, a, b in stretch) < EXACT_BELOW_TRADES:
        if stretch:
            _reposition(st, stretch[0][2], stretch[0][0])
            step_exact(st, stretch[-1][3])
    else:
        for seg, a, b in _merged(stretch):
            _aggregate(st, seg, a, b)
    idx = next((i for i, seg in enumerate(st.segments) if seg.end_s > until_s), len(st.segments))
    _reposition(st, until_s, idx)


def _merged(stretch: list[tuple[int, Segment, float, float]]) -> list[tuple[Segment, float, float]]:
    """Runs of consecutive segments alike but for their rate (the intraday profile's bins), each
    as one segment at the run's mean rate: the same expected trade count, one aggregate step."""
    out: list[tuple[Segment, float, float]] = []
    run: list[tuple[Segment, float, float]] = []

    def flush() -> None:
        if run:
            a, b = run[0][1], run[-1][2]
            trades = sum(seg.rate_per_s * (y - x) for seg, x, y in run)
            out.append((run[0][0]._replace(start_s=a, end_s=b, rate_per_s=trades / (b - a)), a, b))
            run.clear()

    for _, seg, a, b in stretch:
        if b <= a:
            continue
        if run and not _alike(run[-1][0], seg):
            flush()
        run.append((seg, a, b))
    flush()
    return out


def _alike(x: Segment, y: Segment) -> bool:
    return (x.volume_mult, x.move_prob, x.max_jump_ticks, x.fills_mean) == (
        y.volume_mult,
        y.move_prob,
        y.max_jump_ticks,
        y.fills_mean,
    )


def _reposition(st: SymbolState, at_s: float, seg_idx: int) -> None:
    st.vt = max(st.vt, at_s)
    st.next_at = None
    st.seg_idx = seg_idx


def qty_moments(qty_mean_scale: float, cap: int) -> tuple[float, float]:
    """Mean and variance of ``min(max(int(s * Pareto(alpha)), 1), cap)`` (floor taken as -0.5)."""
    s, a = qty_mean_scale, PARETO_ALPHA
    m = cap / s
    if m <= 1.0:
        return float(cap), 0.0
    e1 = 1.0 + (1.0 - m ** (1.0 - a)) / (a - 1.0)
    e2 = 1.0 + 2.0 * (m ** (2.0 - a) - 1.0) / (2.0 - a)
    mean = max(s * e1 - 0.5, 1.0)
    var = max(s * s * (e2 - e1 * e1), 0.0) + 1.0 / 12.0
    return mean, var


def _poisson(rng: random.Random, mean: float) -> int:
    if mean >= 30.0:
        return max(round(rng.gauss(mean, math.sqrt(mean))), 0)
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _binomial_half(rng: random.Random, n: int) -> int:
    if n < 30:
        return sum(rng.random() < 0.5 for _ in range(n))
    return min(max(round(rng.gauss(n / 2.0, math.sqrt(n) / 2.0)), 0), n)


def _aggregate(st: SymbolState, seg: Segment, a: float, b: float) -> None:
    listing = st.listing
    q_mean, q_var = qty_moments(
        listing.qty_scale * seg.volume_mult, int(listing.qty_scale * QTY_CAP_SCALES) + 1
    )
    j = seg.max_jump_ticks
    e_k, e_k2 = (1.0, 1.0) if j == 1 else ((j + 1) / 2.0, (j + 1) * (2 * j + 1) / 6.0)
    t = a
    while t < b:
        tick_rel = tick_size(st.bid) / st.bid
        theta_per_trade = 2.0 * REVERSION_GAIN * e_k * tick_rel * seg.move_prob
        trades = max(SUBSTEP_RELAXATIONS / theta_per_trade, MIN_SUBSTEP_TRADES)
        end = min(b, t + max(trades / seg.rate_per_s, MIN_SUBSTEP_S))
        if b - end < 1e-6 or (b - end) * seg.rate_per_s < MIN_SUBSTEP_TRADES / 4:
            end = b
        _substep(st, seg, t, end, q_mean, q_var, e_k, e_k2, tick_rel)
        t = end


def _substep(
    st: SymbolState,
    seg: Segment,
    a: float,
    b: float,
    q_mean: float,
    q_var: float,
    e_k: float,
    e_k2: float,
    tick_rel: float,
) -> None:
    rng = st.rng
    n = _poisson(rng, seg.rate_per_s * (b - a))
    if n == 0:
        return
    n_buy = _binomial_half(rng, n)
    cap = int(st.listing.qty_scale * QTY_CAP_SCALES) + 1
    vol = round(n * q_mean + math.sqrt(n * q_var) * rng.gauss(0.0, 1.0))
    vol = min(max(vol, n), n * cap)
    buy_vol = min(max(round(vol * n_buy / n), n_buy), vol - (n - n_buy))

    # the bid walk, in relative deviation from where the symbol drifts to
    moves = n * seg.move_prob
    forced = n * FORCED_MOVES_PER_TRADE
    step_var = tick_rel * tick_rel
    x0 = st.bid / st.base - 1.0 - st.drift
    x1 = _revert(rng, x0, moves, 2.0 * REVERSION_GAIN * e_k * tick_rel, e_k2 * step_var, forced * step_var)
    spread_var = moves * e_k2 * step_var + forced * step_var
    hi_x = _bridge_extreme(rng, x0, x1, spread_var, up=True)
    lo_x = _bridge_extreme(rng, x0, x1, spread_var, up=False)

    bid0, ask0 = st.bid, st.ask
    top = tick_down(st.upper)
    bid1 = _bid_at(st, x1, top)
    ask1 = bid1 + tick_size(bid1)
    hi_bid = max(_bid_at(st, hi_x, top), bid0, bid1)
    lo_bid = min(_bid_at(st, lo_x, top), bid0, bid1)
    high = hi_bid + tick_size(hi_bid) if n_buy else hi_bid
    low = lo_bid if n - n_buy else lo_bid + tick_size(lo_bid)
    last_buy = rng.random() < n_buy / n
    price = ask1 if last_buy else bid1
    high, low = max(high, price), min(low, price)

    rate = seg.rate_per_s
    if st.open == 0:
        first_buy = rng.random() < n_buy / n
        st.open = ask0 if first_buy else bid0
        st.open_s = st.high_s = st.low_s = min(a + rng.expovariate(rate), b)
        st.high = st.low = st.open
        high, low = max(high, st.open), min(low, st.open)
    # the extremes are trades: between this stretch's first and last ones
    last_s = max(b - rng.expovariate(rate), a, st.open_s)
    first_s = max(a, st.open_s)
    if high > st.high:
        st.high, st.high_s = high, first_s + rng.random() * (last_s - first_s)
    if low < st.low:
        st.low, st.low_s = low, first_s + rng.random() * (last_s - first_s)

    mid_bid = (bid0 + bid1) / 2.0
    avg_price = mid_bid + (tick_size(bid0) + tick_size(bid1)) / 2.0 * (buy_vol / vol)
    st.price = price
    st.acml_vol += vol
    st.acml_pbmn += round(vol * avg_price)
    st.trades += n
    st.shnu_csnu += n_buy
    st.seln_csnu += n - n_buy
    st.shnu_smtn += buy_vol
    st.seln_smtn += vol - buy_vol
    st.last_trade_s = last_s
    st.bid, st.ask = bid1, ask1
    scale = st.listing.qty_scale
    st.ask_rsqn1 = int(scale * rng.uniform(3, 60)) + 1
    st.bid_rsqn1 = int(scale * rng.uniform(3, 60)) + 1
    st.total_ask = st.ask_rsqn1 * rng.randint(6, 14)
    st.total_bid = st.bid_rsqn1 * rng.randint(6, 14)
    st.quote_version += round(moves + forced)


def _bid_at(st: SymbolState, x: float, top: int) -> int:
    return min(max(floor_to_tick(st.base * (1.0 + st.drift + x)), st.lower), top)


def _revert(
    rng: random.Random, x0: float, moves: float, theta: float, move_var: float, extra_var: float
) -> float:
    """The deviation after `moves` reverting moves (exact OU transition; linear beyond the cap)."""
    cap_x = REVERSION_CAP / REVERSION_GAIN
    var = extra_var
    if abs(x0) > cap_x:
        speed = theta * cap_x  # the capped pull per move
        need = (abs(x0) - cap_x) / speed
        sign = 1.0 if x0 > 0 else -1.0
        if moves <= need:
            return x0 - sign * speed * moves + math.sqrt(var + move_var * moves) * rng.gauss(0.0, 1.0)
        var += move_var * need
        x0, moves = sign * cap_x, moves - need
    decay = math.exp(-theta * moves)
    var = var * decay * decay + move_var * (1.0 - decay * decay) / (2.0 * theta)
    return x0 * decay + math.sqrt(var) * rng.gauss(0.0, 1.0)


def _bridge_extreme(rng: random.Random, x0: float, x1: float, var: float, up: bool) -> float:
    """The maximum (or minimum) of a Brownian bridge from `x0` to `x1` with total variance `var`."""
    u = 1.0 - rng.random()
    reach = math.sqrt((x1 - x0) ** 2 - 2.0 * var * math.log(u))
    return (x0 + x1 + reach) / 2.0 if up else (x0 + x1 - reach) / 2.0
