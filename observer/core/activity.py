"""Where the market is: symbols ranked by activity from Track A sweeps, to seed the free slots.

Data flow: every Track A snapshot's trading value (``value_krw``; the accumulated volume when the
provider reports no value) is noted under its sweep (`observe`); when the rest-collector's
``SweepSummary`` says the sweep is over (`sweep_done`), its symbols are ranked, most active
first, and the ranking is saved to ``state_dir/activity.json`` (write + rename). `seed_order`
answers the order in which free slots are seeded: the latest complete sweep of the day, else the
saved ranking (the same day's after a restart, the previous day's at the start of a day), then
the rest of the universe in its order. `informed` says whether any ranking was behind it.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import msgspec

from observer.atomic import write_atomic
from observer.schema import QuoteSnapshot

_KEEP = 500  # ranked symbols kept on disk (a few times the slots)


class SavedRanking(msgspec.Struct, frozen=True, kw_only=True):
    day: date
    sweep_id: str
    symbols: list[str]  # most active first


class ActivityRanking:
    def __init__(self, path: Path):
        self._path = path
        self._sweep_id = ""
        self._values: dict[str, tuple[int, int]] = {}  # symbol -> (value_krw, volume), current sweep
        self._ranking: SavedRanking | None = None

    def start_day(self, day: date) -> None:
        """Forget the sweeps in memory; take the saved ranking of `day` or of an earlier day."""
        self._sweep_id, self._values = "", {}
        try:
            saved = msgspec.json.decode(self._path.read_bytes(), type=SavedRanking)
        except (OSError, msgspec.DecodeError):
            saved = None
        self._ranking = saved if saved is not None and saved.day <= day else None

    @property
    def informed(self) -> bool:
        return self._ranking is not None

    @property
    def source(self) -> str:
        """What the ranking comes from (for events): a sweep id with its day, or nothing."""
        r = self._ranking
        return f"sweep {r.sweep_id} ({r.day.isoformat()})" if r is not None else "universe order"

    def observe(self, snap: QuoteSnapshot) -> None:
        if snap.sweep_id != self._sweep_id:
            self._sweep_id, self._values = snap.sweep_id, {}
        self._values[snap.symbol] = (snap.value_krw, snap.volume)

    def sweep_done(self, sweep_id: str, day: date) -> bool:
        """Rank the sweep `sweep_id` (if it is the one observed) and save it; True when taken."""
        if sweep_id != self._sweep_id or not self._values:
            return False
        ranked = sorted(self._values, key=lambda s: (self._values[s], s), reverse=True)
        self._ranking = SavedRanking(day=day, sweep_id=sweep_id, symbols=ranked[:_KEEP])
        write_atomic(self._path, msgspec.json.encode(self._ranking), fsync=False)
        return True

    def seed_order(self, universe_order: list[str]) -> list[str]:
        """Symbols in seeding order: ranked ones that are in the universe (when it is known), then
        the rest of the universe."""
        known = set(universe_order)
        ranked = [s for s in self._ranking.symbols if not known or s in known] if self._ranking else []
        taken = set(ranked)
        return ranked + [s for s in universe_order if s not in taken]
