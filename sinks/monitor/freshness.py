"""Fallback freshness evidence, for when the core does not publish the direct figures
(``CoreStats.track_b_oldest_sample_age_s``, ``track_b_silent_symbols``):

* `SlotProgress` — from the core's per-slot totals (``CoreStats.slots``): a slot whose expected
  windows advanced by more than N while nothing was written is stale;
* `SilentSymbols` — from the ws-collector's ``symbol_silent`` events (one per silent episode of a
  symbol): a symbol counts as silent for ``hold_s`` after its report while it holds a slot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from observer import schema


@dataclass(slots=True)
class _Slot:
    written: float
    expected_at_write: float


@dataclass(slots=True)
class SlotProgress:
    _slots: dict[int, _Slot] = field(default_factory=dict)

    def update(self, slots: list[schema.SlotProgress]) -> int:
        """Feed the core's per-slot totals; returns the most windows any slot has gone unwritten."""
        worst = 0.0
        for progress in slots:
            slot, expected, written = progress.slot_number, float(progress.expected), float(progress.written)
            known = self._slots.get(slot)
            if known is None or written != known.written or expected < known.expected_at_write:
                # progress, or a new symbol in the slot (its totals start again)
                self._slots[slot] = _Slot(written, expected)
                continue
            worst = max(worst, expected - known.expected_at_write)
        return int(worst)


@dataclass(slots=True)
class SilentSymbols:
    hold_s: float
    _reported: dict[str, datetime] = field(default_factory=dict)

    def report(self, symbol: str, at: datetime) -> None:
        self._reported[symbol] = at

    def count(self, now: datetime, slot_symbols: set[str] | None) -> int:
        cutoff = now - timedelta(seconds=self.hold_s)
        for symbol in [s for s, at in self._reported.items() if at < cutoff]:
            del self._reported[symbol]
        return sum(1 for s in self._reported if slot_symbols is None or s in slot_symbols)
