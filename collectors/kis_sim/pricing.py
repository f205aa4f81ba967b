"""KRX price grid: tick sizes by price band and the +-30 % daily limits.

Tick sizes (KRW, since 2023 for both KOSPI and KOSDAQ):
``<2,000: 1 · <5,000: 5 · <20,000: 10 · <50,000: 50 · <200,000: 100 · <500,000: 500 · else 1,000``.
Every band edge is a multiple of the tick below it, so ``tick_up``/``tick_down`` never leave the grid.
"""

from __future__ import annotations

_BANDS: tuple[tuple[int, int], ...] = (
    (2_000, 1),
    (5_000, 5),
    (20_000, 10),
    (50_000, 50),
    (200_000, 100),
    (500_000, 500),
)
LIMIT_RATIO = 0.30


def tick_size(price: int) -> int:
    """The tick that applies at `price` (the ``aspr_unit`` KIS reports)."""
    for upper, tick in _BANDS:
        if price < upper:
            return tick
    return 1_000


def floor_to_tick(price: float) -> int:
    """The largest valid price <= `price` (at least 1)."""
    p = max(int(price), 1)
    return max(p - p % tick_size(p), 1)


def ceil_to_tick(price: float) -> int:
    """The smallest valid price >= `price`."""
    p = max(int(price) if price == int(price) else int(price) + 1, 1)
    aligned = floor_to_tick(p)
    return aligned if aligned == p else tick_up(aligned)


def tick_up(price: int) -> int:
    """The next valid price above an on-grid `price`."""
    return price + tick_size(price)


def tick_down(price: int) -> int:
    """The next valid price below an on-grid `price` (never below 1)."""
    return max(price - tick_size(price - 1), 1) if price > 1 else 1


def upper_limit(base: int) -> int:
    """Daily upper limit: base + 30 %, truncated onto the grid."""
    return floor_to_tick(base * (1 + LIMIT_RATIO))


def lower_limit(base: int) -> int:
    """Daily lower limit: base - 30 %, rounded up onto the grid."""
    return ceil_to_tick(base * (1 - LIMIT_RATIO))


def change_sign(price: int, base: int, upper: int, lower: int) -> str:
    """KIS ``prdy_vrss_sign``: 1 upper limit, 2 up, 3 flat, 4 lower limit, 5 down."""
    if price >= upper:
        return "1"
    if price <= lower:
        return "4"
    if price > base:
        return "2"
    if price < base:
        return "5"
    return "3"


def diff_sign(diff: int) -> str:
    """Sign code for an `x - y` difference that is not against the base price (2 up, 3 flat, 5 down)."""
    return "2" if diff > 0 else "5" if diff < 0 else "3"
