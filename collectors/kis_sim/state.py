"""One symbol's intraday state and the shapes it is made of: the day's rate segments, trades, quotes.

`market.Market` owns the states (one per symbol and day, under its lock) and moves them trade by
trade; `fastforward` moves them in aggregate over the stretch before the first look.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass
from datetime import date, datetime
from typing import NamedTuple

from collectors.kis_sim import activity
from collectors.kis_sim.pricing import lower_limit, tick_down, tick_up, upper_limit
from collectors.kis_sim.universe import Listing, unit_hash
from observer.clock import KST

OPEN_S = 9 * 3600
CLOSE_S = 15 * 3600 + 30 * 60
SESSION_S = CLOSE_S - OPEN_S


def seconds_of_day(at: datetime) -> float:
    """Seconds since KST midnight of `at`'s KST date."""
    local = at.astimezone(KST)
    return local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6


def hhmmss(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:02d}{s % 3600 // 60:02d}{s % 60:02d}"


class Segment(NamedTuple):
    """A stretch of the session with a constant arrival rate (records/s; orders arrive at
    ``rate_per_s / fills_mean``, each filling ``fills_mean`` resting orders on average)."""

    start_s: float
    end_s: float
    rate_per_s: float
    volume_mult: float
    move_prob: float
    max_jump_ticks: int
    fills_mean: float = activity.FILLS_MEAN


@dataclass(frozen=True, slots=True)
class Trade:
    """One trade as published on the WS feed: the numbers the ground truth counts, plus the record."""

    code: str
    at_s: float  # virtual seconds since KST midnight
    price: int
    volume: int
    acml_vol: int
    fields: tuple[str, ...]  # the 46 H0STCNT0 fields


@dataclass(frozen=True, slots=True)
class Quote:
    """A consistent snapshot of one symbol (what the REST views render)."""

    listing: Listing
    day: date
    at_s: float
    base: int
    upper: int
    lower: int
    price: int
    open: int
    high: int
    low: int
    open_s: float
    high_s: float
    low_s: float
    ask: int
    bid: int
    ask_rsqn1: int
    bid_rsqn1: int
    total_ask_rsqn: int
    total_bid_rsqn: int
    acml_vol: int
    acml_tr_pbmn: int
    trades: int
    seln_csnu: int
    shnu_csnu: int
    seln_smtn: int
    shnu_smtn: int
    prdy_vol: int
    quote_version: int
    last_trade_s: float

    @property
    def halted(self) -> bool:
        return self.listing.halted


class SymbolState:
    """Mutable intraday state of one symbol for one day (owned by `Market`, guarded by its lock)."""

    __slots__ = (
        "acml_pbmn",
        "acml_vol",
        "ask",
        "ask_rsqn1",
        "base",
        "bid",
        "bid_rsqn1",
        "day",
        "drift",
        "high",
        "high_s",
        "last_trade_s",
        "listing",
        "low",
        "low_s",
        "lower",
        "next_at",
        "open",
        "open_s",
        "pending",
        "prdy_vol",
        "price",
        "quote_version",
        "rng",
        "seg_idx",
        "segments",
        "seln_csnu",
        "seln_smtn",
        "shnu_csnu",
        "shnu_smtn",
        "total_ask",
        "total_bid",
        "trades",
        "upper",
        "vt",
    )

    def __init__(
        self, listing: Listing, day: date, base: int, seed: int, trading: bool, activity_scale: float = 1.0
    ):
        self.listing = listing
        self.day = day
        self.base = base
        self.upper = upper_limit(base)
        self.lower = lower_limit(base)
        self.rng = random.Random(f"kis-sim-day:{seed}:{listing.code}:{day.isoformat()}")
        rng = self.rng
        self.drift = rng.gauss(0.0, 0.06)
        self.bid = base if rng.random() < 0.5 else tick_down(base)
        self.bid = min(max(self.bid, self.lower), tick_down(self.upper))
        self.ask = tick_up(self.bid)
        self.price = base
        self.open = self.high = self.low = 0
        self.open_s = self.high_s = self.low_s = 0.0
        self.acml_vol = self.acml_pbmn = self.trades = 0
        self.seln_csnu = self.shnu_csnu = self.seln_smtn = self.shnu_smtn = 0
        self.ask_rsqn1 = int(listing.qty_scale * rng.uniform(5, 60)) + 1
        self.bid_rsqn1 = int(listing.qty_scale * rng.uniform(5, 60)) + 1
        self.total_ask = self.ask_rsqn1 * rng.randint(6, 14)
        self.total_bid = self.bid_rsqn1 * rng.randint(6, 14)
        expected = (
            listing.base_rate_per_s
            * activity_scale
            * activity.DAY_MEAN_MULTIPLIER
            * SESSION_S
            * listing.qty_scale
            * 2.5
        )
        self.prdy_vol = int(expected * (0.6 + 0.8 * unit_hash(seed, listing.code, day, "prdy_vol")))
        self.quote_version = 0
        self.last_trade_s = 0.0
        self.vt = 0.0
        self.segments: tuple[Segment, ...] = (
            build_segments(listing, rng, activity_scale) if trading and not listing.halted else ()
        )
        self.seg_idx = 0
        self.next_at: float | None = None
        self.pending: list[Trade] | None = None

    def snapshot(self) -> Quote:
        return Quote(
            listing=self.listing,
            day=self.day,
            at_s=self.vt,
            base=self.base,
            upper=self.upper,
            lower=self.lower,
            price=self.price,
            open=self.open,
            high=self.high,
            low=self.low,
            open_s=self.open_s,
            high_s=self.high_s,
            low_s=self.low_s,
            ask=self.ask,
            bid=self.bid,
            ask_rsqn1=self.ask_rsqn1,
            bid_rsqn1=self.bid_rsqn1,
            total_ask_rsqn=self.total_ask,
            total_bid_rsqn=self.total_bid,
            acml_vol=self.acml_vol,
            acml_tr_pbmn=self.acml_pbmn,
            trades=self.trades,
            seln_csnu=self.seln_csnu,
            shnu_csnu=self.shnu_csnu,
            seln_smtn=self.seln_smtn,
            shnu_smtn=self.shnu_smtn,
            prdy_vol=self.prdy_vol,
            quote_version=self.quote_version,
            last_trade_s=self.last_trade_s,
        )


def build_segments(listing: Listing, rng: random.Random, scale: float = 1.0) -> tuple[Segment, ...]:
    """The day's piecewise-constant arrival rate: the intraday profile times burst windows, x `scale`
    (see `activity`)."""
    bursts: list[tuple[float, float, float, float]] = []
    n_bursts = _poisson(rng, activity.BURSTS_PER_DAY[listing.activity])
    for _ in range(n_bursts):
        start = rng.uniform(OPEN_S, CLOSE_S - 60)
        length = rng.uniform(*activity.BURST_LENGTH_S)
        bursts.append(
            (
                start,
                min(start + length, CLOSE_S),
                rng.uniform(*activity.BURST_RATE),
                rng.uniform(*activity.BURST_VOLUME),
            )
        )
    base = listing.base_rate_per_s * scale
    if not bursts:
        return tuple(
            Segment(a, b, base * m, 1.0, 0.25, 1, activity.FILLS_MEAN) for a, b, m in activity.PROFILE_BINS
        )
    edges = set(activity.profile_edges())
    for b_start, b_end, _, _ in bursts:
        edges.add(b_start)
        edges.add(b_end)
    cuts = sorted(e for e in edges if OPEN_S <= e <= CLOSE_S)
    out: list[Segment] = []
    for start, end in itertools.pairwise(cuts):
        if end <= start:
            continue
        rate_mult, vol_mult, move, jump, fills = 1.0, 1.0, 0.25, 1, activity.FILLS_MEAN
        for b_start, b_end, b_rate, b_vol in bursts:
            if b_start <= start < b_end:
                rate_mult, vol_mult, move, jump = rate_mult * b_rate, max(vol_mult, b_vol), 0.6, 3
                fills = activity.BURST_FILLS_MEAN
        rate = base * activity.intraday_multiplier(start) * rate_mult
        out.append(Segment(start, end, rate, vol_mult, move, jump, fills))
    return tuple(out)


def _poisson(rng: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k
