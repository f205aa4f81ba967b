"""The simulated market is as busy as KRX (see `collectors.kis_sim.activity` for the calibration)."""

from __future__ import annotations

import statistics
from collections import Counter
from datetime import date, datetime

import pytest

from collectors.kis_sim import activity
from collectors.kis_sim.calendar import SimCalendar
from collectors.kis_sim.market import Market
from collectors.kis_sim.server import SimOptions
from collectors.kis_sim.state import SymbolState
from collectors.kis_sim.universe import Listing, build_listings
from observer.clock import KST, ManualClock
from observer.config import SimConfig

SEED = 20_260_101


@pytest.fixture(scope="module")
def listings() -> list[Listing]:
    return build_listings(SEED, 4_000)


def _top(listings: list[Listing], n: int) -> list[Listing]:
    return sorted(listings, key=lambda x: -x.base_rate_per_s)[:n]


def test_rank_law_head_and_long_tail(listings: list[Listing]) -> None:
    top = _top(listings, 41)
    assert top[0].base_rate_per_s >= 4.0 and top[40].base_rate_per_s >= 1.0  # several trades/s each
    assert 100 <= sum(x.base_rate_per_s for x in top) <= 160  # the top 41 at midday
    busy = [x for x in listings if x.activity == "busy"]
    assert len(busy) == activity.BUSY_N and all(x.group == "ST" and x.ref_close_krw >= 4_000 for x in busy)
    assert sum(x.activity == "busy" for x in top) >= 35  # nearly all watchable by Track B
    rates = sorted((x.base_rate_per_s for x in listings), reverse=True)
    assert statistics.median(rates) < 0.05  # the long tail
    assert sum(rates[:41]) > 0.25 * sum(rates)


def test_u_shaped_profile() -> None:
    midday = activity.intraday_multiplier(12 * 3600)
    first = statistics.mean(activity.intraday_multiplier(9 * 3600 + s) for s in range(0, 1800, 60))
    last = statistics.mean(activity.intraday_multiplier(15 * 3600 + s) for s in range(0, 1800, 60))
    assert 0.7 <= midday <= 1.0
    assert first >= 3 * midday and last >= 3 * midday * 0.9
    assert activity.intraday_multiplier(9 * 3600) > activity.intraday_multiplier(9 * 3600 + 1500)


@pytest.mark.parametrize("scale", [1.0, 10.0, 50.0])
def test_activity_scale_multiplies_every_rate(listings: list[Listing], scale: float) -> None:
    listing = _top(listings, 1)[0]
    base = SymbolState(listing, date(2026, 1, 5), 10_000, SEED, True)
    scaled = SymbolState(listing, date(2026, 1, 5), 10_000, SEED, True, activity_scale=scale)
    assert [s.rate_per_s * scale for s in base.segments] == pytest.approx(
        [s.rate_per_s for s in scaled.segments]
    )


def test_top41_midday_and_open_records_per_second(listings: list[Listing]) -> None:
    """Measured on the trade stream itself: 60 s at the open and 60 s at midday, 41 busiest."""
    codes = [x.code for x in _top(listings, 41)]

    def records_per_s(start: datetime) -> tuple[float, Counter[int]]:
        clock = ManualClock(start)
        m = Market(listings, SEED, clock, SimCalendar())
        for code in codes:
            m.watch(code)
        n, fills = 0, Counter[int]()
        for _ in range(600):
            clock.advance(0.1)
            for batch in m.pump().values():
                n += len(batch)
                fills.update(Counter(t.at_s for t in batch).values())
        return n / 60.0, fills

    midday, fills = records_per_s(datetime(2026, 1, 5, 12, 30, tzinfo=KST))
    opening, _ = records_per_s(datetime(2026, 1, 5, 9, 1, tzinfo=KST))
    assert midday >= 80, midday
    assert opening >= 3 * midday, (opening, midday)
    # orders fill several resting orders at once: many records share their instant
    assert sum(k * v for k, v in fills.items() if k >= 2) > 0.5 * sum(k * v for k, v in fills.items())


def test_default_credentials_are_shaped_like_kis() -> None:
    cfg = SimConfig()
    assert len(cfg.app_key) == 36 and cfg.app_key.isalnum()
    assert len(cfg.app_secret) == 180
    assert SimOptions().app_key == cfg.app_key and SimOptions().app_secret == cfg.app_secret
