"""How busy the synthetic KRX is: the activity model, and what it was calibrated against.

Four parts, each a function or constant here (`universe` ranks the listings, `state` builds each
symbol's day from them, `market` trades it):

* **Rank-activity law** (`midday_rate_per_s`): the midday rate, in H0STCNT0 records per second, of
  the listing ranked *r* by activity. A broken power law: ``8 * r**-0.4`` over the head (the 48
  most active, all universe stocks, so Track B's 41 slots can hold them: 8/s at rank 1, 3.5/s at
  rank 8, 1.8/s at rank 41), then ``(r/48)**-1.3`` below it (the long tail: ~0.66/s at rank 100,
  0.08/s at rank 500, 0.005/s at rank 4,000). Every listing's rate carries a log-normal spread
  (sigma 0.2). Top 41 together: ~115 records/s at midday.
* **Intraday profile** (`intraday_multiplier`): a U shape on 5-minute bins, 1.0 at midday:
  ``1 + 7 e^-(t-09:00)/12min + 5 e^-(15:30-t)/15min``, times 0.8 over lunch (11:30-13:00).
  The first 30 minutes average 3.6x midday (about 8x in the first 5 minutes), the last 30
  minutes 3.2x; the day averages `DAY_MEAN_MULTIPLIER` (1.36x) midday. So the top 41 run at
  ~115/s midday and ~400/s (peaks ~800/s) in the first half hour.
* **Orders and fills** (`FILLS_MEAN`, `BURST_FILLS_MEAN`): trades arrive as marketable orders, each
  filling 1..20 resting orders at the same instant (geometric, mean 2.5; 3.5 in a burst), every
  fill one record, published together: a busy symbol's frames carry several records, as KIS's do.
* **Bursts** (`BURSTS_PER_DAY`, `BURST_*`): a few per day per symbol (5 for the head), 20-240 s
  long, rate x3-8, bigger fills and jumpier quotes: the volume surges and volatility spikes the
  Track B triggers look for.

``[sim] activity_scale`` multiplies every rate (x10, x50 for stress runs); fills per order and the
profile keep their shape.

**Calibrated against** (the figures the model reproduces, and where they come from):

1. The real H0STCNT0 record quoted in `records` (KIS Developers, 005930 Samsung Electronics,
   2023-03-24 11:26:16): SELN_CNTG_CSNU 25,807 + SHNU_CNTG_CSNU 15,918 = 41,725 trades since the
   open, i.e. 4.75 trades/s averaged over 09:00-11:26; with this profile's morning mean (1.5x
   midday) that is ~3.1/s at midday, which the law gives at rank ~9 (005930 trades fewer but
   bigger orders than the busiest KOSDAQ names). ACML_VOL 9,694,968 -> 232 shares per trade.
2. The KIS Developers portal's H0STCNT0 page (apiservice-domestic-stock-real2): its sample frame
   ``0|H0STCNT0|004|005930^123929^...`` carries 4 records at 12:39:29, the quiet middle of the day;
   the recorded 005930 stream of issue 12 (11:48) carries 2-5 records per frame.
3. Issue 12's brief (from KRX observation): the most active symbols trade several times per second
   with bursts well above, the top 41 together 100+ records/s at midday and several times that in
   the first and last 30 minutes, the rest long-tailed.
4. The U-shaped intraday volume pattern documented for equity markets (Wood, McInish & Ord 1985;
   McInish & Wood 1990, 1992; Lee, Fok & Liu 2001 for Asian order-driven markets) and for the
   Korean market (intraday-pattern studies of KOSPI volume): heavy open, lull over lunch, heavy
   close. The multipliers are chosen to give the brief's "several times", not fitted to KRX ticks.

Not modelled: the 08:30-09:00 and 15:20-15:30 call auctions (the whole 09:00-15:30 window trades
continuously), after-hours sessions, cross-symbol correlation of bursts.
"""

from __future__ import annotations

import math

# rank-activity law
TOP_MIDDAY_RATE_PER_S = 8.0
HEAD_SLOPE = 0.4
TAIL_SLOPE = 1.3
BUSY_N = 48
RATE_NOISE_SIGMA = 0.2
ACTIVE_MIN_RATE_PER_S = 0.1

# intraday profile (seconds of day, KST)
OPEN_S = 9 * 3600
CLOSE_S = 15 * 3600 + 30 * 60
PROFILE_BIN_S = 300
OPEN_SURGE = 7.0
OPEN_DECAY_S = 720.0
CLOSE_SURGE = 5.0
CLOSE_DECAY_S = 900.0
LUNCH = (11 * 3600 + 1800, 13 * 3600, 0.8)

# orders and fills
FILLS_MEAN = 2.5
BURST_FILLS_MEAN = 3.5
MAX_FILLS = 20

# bursts: per day by activity class; length (s), rate and fill-size multipliers
BURSTS_PER_DAY = {"busy": 5.0, "active": 2.0, "quiet": 0.5, "halted": 0.0}
BURST_LENGTH_S = (20.0, 240.0)
BURST_RATE = (3.0, 8.0)
BURST_VOLUME = (1.5, 4.0)


def midday_rate_per_s(rank: int) -> float:
    """Records per second at midday of the `rank`-th most active listing (1 = the most active)."""
    if rank <= BUSY_N:
        return TOP_MIDDAY_RATE_PER_S * rank**-HEAD_SLOPE
    return TOP_MIDDAY_RATE_PER_S * BUSY_N**-HEAD_SLOPE * (rank / BUSY_N) ** -TAIL_SLOPE


def _bin_multiplier(index: int) -> float:
    mid = OPEN_S + (index + 0.5) * PROFILE_BIN_S
    m = 1.0 + OPEN_SURGE * math.exp(-(mid - OPEN_S) / OPEN_DECAY_S)
    m += CLOSE_SURGE * math.exp(-(CLOSE_S - mid) / CLOSE_DECAY_S)
    if LUNCH[0] <= mid < LUNCH[1]:
        m *= LUNCH[2]
    return m


_BINS = tuple(_bin_multiplier(i) for i in range((CLOSE_S - OPEN_S) // PROFILE_BIN_S))


def intraday_multiplier(t_s: float) -> float:
    """The activity at second of day `t_s` (in the session) relative to midday: its profile bin's."""
    index = int((t_s - OPEN_S) // PROFILE_BIN_S)
    return _BINS[min(max(index, 0), len(_BINS) - 1)]


def profile_edges() -> list[float]:
    """The bin boundaries of the profile over the session."""
    return [float(t) for t in range(OPEN_S, CLOSE_S + 1, PROFILE_BIN_S)]


DAY_MEAN_MULTIPLIER = sum(_BINS) / len(_BINS)
# (start, end, multiplier) of every profile bin
PROFILE_BINS = tuple(
    (float(OPEN_S + i * PROFILE_BIN_S), float(OPEN_S + (i + 1) * PROFILE_BIN_S), m)
    for i, m in enumerate(_BINS)
)


def fills_continue_prob(mean_fills: float) -> float:
    """The geometric law's continuation probability for `mean_fills` fills per order."""
    return 1.0 - 1.0 / mean_fills
