"""Slot candidate triggers, in priority order (lower number wins):

========  ================  ====================================================================
priority  rule              fires when
========  ================  ====================================================================
1         volume_surge      a Track A snapshot's volume increment since the symbol's previous
                            sweep is >= ``core.surge_ratio`` x the increment before it (for the
                            day's second sweep: x the volume at the first) and >=
                            ``core.surge_min_volume``; score = the ratio
2         trade_velocity    a watched symbol's ticks show >= ``core.velocity_trades_per_min``
                            trades over the last 60 s; score = trades per minute
3         volatility_spike  a snapshot's price moved >= ``core.volatility_pct`` % since the
                            symbol's previous sweep; score = the move in %
4         manual            an operator pin (``Command(action="pin")``); never evicted
5         seed              before any Track A data: the universe's first symbols (or the first
                            symbols seen), so Track B has work from 09:30; replaced by any trigger
========  ================  ====================================================================
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from observer.config import CoreConfig
from observer.schema import QuoteSnapshot, Tick

RULE_PRIORITY = {"volume_surge": 1, "trade_velocity": 2, "volatility_spike": 3, "manual": 4, "seed": 5}
_VELOCITY_WINDOW = timedelta(seconds=60)
_VELOCITY_REPEAT = timedelta(seconds=5)


@dataclass(frozen=True, slots=True)
class Candidate:
    symbol: str
    rule: str
    score: float
    at: datetime

    @property
    def priority(self) -> int:
        return RULE_PRIORITY[self.rule]

    @property
    def rank(self) -> tuple[int, float]:
        """Smaller is stronger."""
        return (self.priority, -self.score)


@dataclass(slots=True)
class _SweepState:
    sweep_id: str
    volume: int
    price: int
    prev_increment: int | None = None


@dataclass(slots=True)
class _Velocity:
    times: deque[datetime] = field(default_factory=deque)
    last_fired: datetime | None = None


class TriggerRules:
    """Turns snapshots and ticks into candidates. State is per trading day."""

    def __init__(self, core: CoreConfig):
        self._core = core
        self._sweeps: dict[str, _SweepState] = {}
        self._velocity: dict[str, _Velocity] = {}

    def on_snapshot(self, snap: QuoteSnapshot) -> Candidate | None:
        prev = self._sweeps.get(snap.symbol)
        if prev is None:
            self._sweeps[snap.symbol] = _SweepState(snap.sweep_id, snap.volume, snap.price)
            return None
        if prev.sweep_id == snap.sweep_id:
            return None
        increment = snap.volume - prev.volume
        baseline = prev.prev_increment if prev.prev_increment is not None else prev.volume
        found: Candidate | None = None
        if increment >= self._core.surge_min_volume and increment >= self._core.surge_ratio * max(
            baseline, 1
        ):
            found = Candidate(
                snap.symbol, "volume_surge", round(increment / max(baseline, 1), 3), snap.received_at
            )
        elif prev.price > 0:
            move_pct = abs(snap.price - prev.price) * 100 / prev.price
            if move_pct >= self._core.volatility_pct:
                found = Candidate(snap.symbol, "volatility_spike", round(move_pct, 3), snap.received_at)
        self._sweeps[snap.symbol] = _SweepState(snap.sweep_id, snap.volume, snap.price, max(increment, 0))
        return found

    def on_tick(self, tick: Tick) -> Candidate | None:
        v = self._velocity.get(tick.symbol)
        if v is None:
            v = self._velocity[tick.symbol] = _Velocity()
        at = tick.received_at
        v.times.append(at)
        while v.times and at - v.times[0] > _VELOCITY_WINDOW:
            v.times.popleft()
        per_min = float(len(v.times))
        if per_min < self._core.velocity_trades_per_min:
            return None
        if v.last_fired is not None and at - v.last_fired < _VELOCITY_REPEAT:
            return None
        v.last_fired = at
        return Candidate(tick.symbol, "trade_velocity", per_min, at)
