"""The day's universe as the core sees it: one lookup over every configured market.

Loaded at the start of each KST trading day from ``paths.universe_dir``. A market whose day
snapshot is missing falls back to the latest earlier snapshot (one WARNING event); when no market has
any snapshot, the core accepts every symbol with quality degraded and says so once (ERROR event).
While the day's own snapshots are not all there (the rest-collector builds them at start or before
the open), the core loads again on the rest-collector's ``universe_built`` event and every
``RELOAD_S`` seconds, and `refresh` swaps the better result in place (the rule book keeps its
reference and its per-symbol state).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from observer.config import Config
from observer.universe import UniverseEntry, UniverseError, load_universe

RELOAD_S = 30.0


@dataclass(frozen=True, slots=True)
class UniverseNotice:
    """Something to report about the load: becomes a SystemEvent."""

    type: str
    severity: str
    message: str
    market: str


@dataclass(slots=True)
class DayUniverse:
    day: date | None = None
    entries: dict[str, UniverseEntry] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # symbols in snapshot order (slot seeding)
    notices: list[UniverseNotice] = field(default_factory=list)
    available: bool = False

    @classmethod
    def load(cls, cfg: Config, day: date) -> DayUniverse:
        uni = cls(day=day)
        directory = Path(cfg.paths.universe_dir)
        for market in cfg.provider.markets:
            try:
                loaded = load_universe(directory, day, market)
            except UniverseError as e:
                uni.notices.append(UniverseNotice("universe_missing", "WARNING", str(e), market))
                continue
            if loaded.fallback_from is not None:
                uni.notices.append(
                    UniverseNotice(
                        "universe_fallback",
                        "WARNING",
                        f"no {market} universe for {day}; using {loaded.path} ({loaded.snapshot.date})",
                        market,
                    )
                )
            for entry in loaded.snapshot.symbols:
                if entry.symbol not in uni.entries:
                    uni.order.append(entry.symbol)
                uni.entries[entry.symbol] = entry
            uni.available = True
        if not uni.available:
            uni.notices.append(
                UniverseNotice(
                    "universe_unavailable",
                    "ERROR",
                    f"no universe snapshot at all for {day}: every symbol accepted, quality degraded",
                    "",
                )
            )
        return uni

    @property
    def complete(self) -> bool:
        """Every configured market has its own snapshot for the day."""
        return self.available and not any(
            n.type in ("universe_missing", "universe_fallback") for n in self.notices
        )

    def refresh(self, cfg: Config) -> bool:
        """Load the day again; take it in place when it is complete. True when it was taken."""
        if self.day is None or self.complete:
            return False
        fresh = DayUniverse.load(cfg, self.day)
        if not fresh.complete:
            return False
        self.entries, self.order, self.notices, self.available = (
            fresh.entries,
            fresh.order,
            fresh.notices,
            fresh.available,
        )
        return True

    def contains(self, symbol: str) -> bool:
        return symbol in self.entries

    def prev_close(self, symbol: str) -> int:
        entry = self.entries.get(symbol)
        return entry.prev_close if entry is not None else 0

    def market_of(self, symbol: str, default: str) -> str:
        entry = self.entries.get(symbol)
        return entry.market if entry is not None else default

    def __len__(self) -> int:
        return len(self.entries)
