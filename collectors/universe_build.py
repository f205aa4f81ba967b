"""The universe manager: builds the day's universe before the open, once, and never rewrites it.

Data flow: provider master data (``universe_candidates``, per market) -> filter (group codes,
halted, liquidation) -> one previous-close confirmation sweep (``prev_closes``) -> keep closes >=
``universe.min_prev_close_krw`` -> ``<universe_dir>/YYYYMMDD_{market}.json`` through
`observer.universe.write_snapshot_once` (atomic, first writer wins, byte-identical forever).

When a day's snapshot already exists it is used as is (no request is made). When building fails
(master data unreachable, too many closes unconfirmed), the latest earlier snapshot is used and a
``universe_fallback`` system event says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date
from pathlib import Path

from collectors.providers import IMarketDataProvider, ProviderError, UniverseCandidate
from observer import record_ids
from observer.clock import Clock
from observer.config import Config
from observer.retry import RetriesExhausted
from observer.schema import DetailValue, UniverseBuilt
from observer.universe import (
    LoadedUniverse,
    UniverseEntry,
    UniverseSnapshot,
    load_universe,
    snapshot_path,
    write_snapshot_once,
)

log = logging.getLogger(__name__)

# (type, severity, message, details) -> the caller turns it into a SystemEvent
EventSink = Callable[[str, str, str, dict[str, DetailValue]], None]
MAX_UNCONFIRMED_RATIO = 0.05


class UniverseBuildError(Exception):
    """The day's universe could not be built (the caller falls back to an earlier snapshot)."""


def universe_dir(cfg: Config) -> Path:
    return Path(cfg.paths.universe_dir)


def _ignore(type_: str, severity: str, message: str, details: dict[str, DetailValue]) -> None:
    pass


def _ignore_built(built: UniverseBuilt) -> None:
    pass


class UniverseBuilder:
    """Builds, loads or falls back to the day's universe for every configured market."""

    def __init__(
        self,
        cfg: Config,
        provider: IMarketDataProvider,
        clock: Clock,
        emit: EventSink | None = None,
        built: Callable[[UniverseBuilt], None] | None = None,
        source: str = "universe",
    ):
        self.cfg = cfg
        self.provider = provider
        self.clock = clock
        self.emit = emit or _ignore
        self.built = built or _ignore_built
        self.source = source
        self.directory = universe_dir(cfg)
        self.markets = list(cfg.provider.markets)

    def eligible(self, candidate: UniverseCandidate) -> bool:
        u = self.cfg.universe
        if candidate.group not in u.group_codes:
            return False
        if u.exclude_halted and candidate.halted:
            return False
        return not (u.exclude_liquidation and candidate.liquidation)

    def build(self, day: date) -> dict[str, UniverseSnapshot]:
        """Build (not write) the snapshots of `day`. Raises UniverseBuildError."""
        u = self.cfg.universe
        candidates: dict[str, UniverseCandidate] = {}
        for market in self.markets:
            try:
                listed = self.provider.universe_candidates(market)
            except (ProviderError, RetriesExhausted, OSError, ValueError) as e:
                raise UniverseBuildError(f"{market} master data unavailable: {e}") from e
            except Exception as e:  # provider-specific errors (KisError...) are not ours to name
                raise UniverseBuildError(f"{market} master data unavailable: {type(e).__name__}: {e}") from e
            for c in listed:
                if self.eligible(c):
                    candidates[c.symbol] = c
        if not candidates:
            raise UniverseBuildError("no eligible instrument in the master data")
        closes, failed = self.provider.prev_closes(sorted(candidates))
        unconfirmed = len(failed)
        if unconfirmed > MAX_UNCONFIRMED_RATIO * len(candidates):
            raise UniverseBuildError(
                f"previous close unconfirmed for {unconfirmed} of {len(candidates)} candidates"
            )
        if unconfirmed:
            self.emit(
                "universe_unconfirmed",
                "WARNING",
                f"{unconfirmed} previous closes unconfirmed; the master file's base price was used",
                {"symbols": sorted(failed)[:200], "count": unconfirmed},
            )
        created_at = self.clock.now()
        out: dict[str, UniverseSnapshot] = {}
        for market in self.markets:
            entries = []
            for symbol, c in sorted(candidates.items()):
                if c.market != market:
                    continue
                close = closes.get(symbol, c.base_price)
                if close >= u.min_prev_close_krw:
                    entries.append(UniverseEntry(symbol=symbol, name=c.name, market=market, prev_close=close))
            out[market] = UniverseSnapshot(
                date=day,
                market=market,
                provider=self.provider.name,
                created_at=created_at,
                source=f"{self.provider.name}:master+prev_close_sweep",
                min_prev_close_krw=u.min_prev_close_krw,
                symbols=entries,
            )
        return out

    def ensure(self, day: date) -> dict[str, LoadedUniverse]:
        """The universes of `day`: existing files, else freshly built and written once, else the
        latest earlier snapshot (with a ``universe_fallback`` event). Raises UniverseError when
        there is nothing at all to use."""
        missing = [m for m in self.markets if not snapshot_path(self.directory, day, m).exists()]
        built: dict[str, UniverseSnapshot] = {}
        error = ""
        if missing:
            try:
                built = self.build(day)
            except UniverseBuildError as e:
                error = str(e)
                log.warning("universe build failed", extra={"day": str(day), "error": error})
        out: dict[str, LoadedUniverse] = {}
        for market in self.markets:
            snap = built.get(market)
            if snap is not None and market in missing:
                path, written = write_snapshot_once(self.directory, snap)
                if written:
                    provider = self.cfg.archive_provider
                    self.built(
                        UniverseBuilt(
                            record_id=record_ids.event(
                                self.source, "universe_built", provider, market, f"{day:%Y%m%d}"
                            ),
                            at=self.clock.now(),
                            source=self.source,
                            provider=provider,
                            market=market,
                            day=day,
                            symbols=len(snap.symbols),
                            path=str(path),
                            snapshot=snap,
                        )
                    )
            loaded = load_universe(self.directory, day, market)
            if loaded.fallback_from is not None:
                self.emit(
                    "universe_fallback",
                    "WARNING",
                    f"no {market} universe for {day}; using {loaded.snapshot.date}",
                    {
                        "market": market,
                        "day": day.isoformat(),
                        "used": loaded.snapshot.date.isoformat(),
                        "path": loaded.path,
                        "error": error,
                    },
                )
            out[market] = loaded
        return out


def symbols_of(universes: dict[str, LoadedUniverse]) -> dict[str, str]:
    """symbol -> market over every market's universe."""
    return {e.symbol: market for market, lu in universes.items() for e in lu.snapshot.symbols}
