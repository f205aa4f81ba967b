"""Ground truth: what the simulator actually put on the wire, counted at the moment it was sent.

* WS: per session and per symbol, every H0STCNT0 record written to the socket (count, volume,
  first and last ACML_VOL), frames by kind, damaged (truncated/corrupted) records apart; and per
  symbol every trade itself (its ACML_VOL, which identifies it, and its virtual time: `trades`);
* REST: per app key (by `auth.key_id`) and per wall-clock second, every /uapi request, accepted
  or answered with the rate limit.

A client that follows the protocol must, on a clean run, receive exactly the published records;
anything it misses shows up as a difference against these counts.
"""

from __future__ import annotations

import threading
from array import array
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from collectors.kis_sim.schema import RestKeyTruth, SessionTruth, Stamp, SymbolTrades, SymbolTruth
from collectors.kis_sim.state import Trade
from observer.clock import KST, to_rfc3339

_KEEP_SECONDS = 3_600


@dataclass(slots=True)
class _TradeList:
    """Every trade written for one symbol: ACML_VOL (identifies it) and virtual ms of day."""

    acml_vol: array[int] = field(default_factory=lambda: array("q"))
    at_ms: array[int] = field(default_factory=lambda: array("q"))
    damaged_acml_vol: array[int] = field(default_factory=lambda: array("q"))
    damaged_at_ms: array[int] = field(default_factory=lambda: array("q"))

    def add(self, trades: Iterable[Trade], damaged: bool) -> None:
        vols, times = (self.damaged_acml_vol, self.damaged_at_ms) if damaged else (self.acml_vol, self.at_ms)
        for t in trades:
            vols.append(t.acml_vol)
            times.append(round(t.at_s * 1000))

    def render(self) -> SymbolTrades:
        return SymbolTrades(
            acml_vol=self.acml_vol.tolist(),
            at_ms=self.at_ms.tolist(),
            damaged_acml_vol=self.damaged_acml_vol.tolist(),
            damaged_at_ms=self.damaged_at_ms.tolist(),
        )


@dataclass(slots=True)
class _SymbolCount:
    records: int = 0
    volume: int = 0
    first_acml_vol: int = 0
    last_acml_vol: int = 0
    damaged: int = 0

    def add(self, trades: Iterable[Trade], damaged: bool) -> None:
        for t in trades:
            if damaged:
                self.damaged += 1
                continue
            if self.records == 0:
                self.first_acml_vol = t.acml_vol
            self.records += 1
            self.volume += t.volume
            self.last_acml_vol = t.acml_vol

    def render(self, market_trades: int = 0, market_acml_vol: int = 0) -> SymbolTruth:
        return SymbolTruth(
            published_records=self.records,
            published_volume=self.volume,
            first_acml_vol=self.first_acml_vol,
            last_acml_vol=self.last_acml_vol,
            damaged_records=self.damaged,
            market_trades=market_trades,
            market_acml_vol=market_acml_vol,
        )


@dataclass(slots=True)
class _Session:
    session_id: int
    opened: Stamp
    key_id: str | None = None
    closed: Stamp | None = None
    close_reason: str | None = None
    frames: dict[str, int] = field(default_factory=dict)
    records: int = 0
    symbols: dict[str, _SymbolCount] = field(default_factory=dict)


@dataclass(slots=True)
class _RestKey:
    requests: int = 0
    accepted: int = 0
    rate_limited: int = 0
    max_per_s: int = 0
    max_accepted_per_s: int = 0
    per_second: OrderedDict[int, list[int]] = field(default_factory=OrderedDict)


class Ledger:
    """Thread-safe counters; `sessions`, `symbols`, `rest` render them as schema structs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[int, _Session] = {}
        self._symbols: dict[str, _SymbolCount] = {}
        self._trades: dict[str, _TradeList] = {}
        self._rest: dict[str, _RestKey] = {}

    # ------------------------------------------------------------------ WS
    def session_opened(self, session_id: int, at: Stamp) -> None:
        with self._lock:
            self._sessions[session_id] = _Session(session_id, at)

    def session_bound(self, session_id: int, key: str) -> None:
        with self._lock:
            self._sessions[session_id].key_id = key

    def session_closed(self, session_id: int, at: Stamp, reason: str) -> None:
        with self._lock:
            s = self._sessions[session_id]
            if s.closed is None:
                s.closed, s.close_reason = at, reason

    def frame_sent(
        self, session_id: int, kind: str, trades: list[Trade] | None = None, damaged: bool = False
    ) -> None:
        """Count one frame written to the socket (`trades`: the H0STCNT0 records it carried)."""
        with self._lock:
            s = self._sessions[session_id]
            s.frames[kind] = s.frames.get(kind, 0) + 1
            if damaged:
                s.frames["damaged"] = s.frames.get("damaged", 0) + 1
            if not trades:
                return
            if not damaged:
                s.records += len(trades)
            by_code: dict[str, list[Trade]] = {}
            for t in trades:
                by_code.setdefault(t.code, []).append(t)
            for code, group in by_code.items():
                s.symbols.setdefault(code, _SymbolCount()).add(group, damaged)
                self._symbols.setdefault(code, _SymbolCount()).add(group, damaged)
                self._trades.setdefault(code, _TradeList()).add(group, damaged)

    def session_count(self) -> int:
        with self._lock:
            return sum(1 for s in self._sessions.values() if s.closed is None)

    def sessions(self) -> list[SessionTruth]:
        with self._lock:
            return [
                SessionTruth(
                    session_id=s.session_id,
                    key_id=s.key_id,
                    opened=s.opened,
                    closed=s.closed,
                    close_reason=s.close_reason,
                    frames=dict(s.frames),
                    records=s.records,
                    symbols={c: v.render() for c, v in s.symbols.items()},
                )
                for s in self._sessions.values()
            ]

    def symbols(self, market_totals: dict[str, tuple[int, int]]) -> dict[str, SymbolTruth]:
        """Published counts per symbol, joined with the market's (trades, acml_vol) where given."""
        with self._lock:
            codes = set(self._symbols) | set(market_totals)
            out = {}
            for code in sorted(codes):
                count = self._symbols.get(code, _SymbolCount())
                trades, vol = market_totals.get(code, (0, 0))
                out[code] = count.render(trades, vol)
            return out

    def trades(self, symbols: Iterable[str] = ()) -> dict[str, SymbolTrades]:
        """Every trade record written per symbol (all sessions; `symbols` empty: every symbol)."""
        wanted = set(symbols)
        with self._lock:
            return {c: t.render() for c, t in sorted(self._trades.items()) if not wanted or c in wanted}

    def published_codes(self) -> list[str]:
        with self._lock:
            return list(self._symbols)

    # ------------------------------------------------------------------ REST
    def rest_request(self, key: str, at: datetime) -> int:
        """Count one /uapi request; returns how many this key made in `at`'s wall-clock second."""
        second = int(at.timestamp())
        with self._lock:
            r = self._rest.setdefault(key, _RestKey())
            r.requests += 1
            slot = r.per_second.get(second)
            if slot is None:
                slot = r.per_second[second] = [0, 0]
                while len(r.per_second) > _KEEP_SECONDS:
                    r.per_second.popitem(last=False)
            slot[0] += 1
            r.max_per_s = max(r.max_per_s, slot[0])
            return slot[0]

    def rest_outcome(self, key: str, at: datetime, accepted: bool) -> None:
        second = int(at.timestamp())
        with self._lock:
            r = self._rest.setdefault(key, _RestKey())
            slot = r.per_second.setdefault(second, [0, 0])
            if accepted:
                r.accepted += 1
                slot[1] += 1
                r.max_accepted_per_s = max(r.max_accepted_per_s, slot[1])
            else:
                r.rate_limited += 1

    def rest(self) -> dict[str, RestKeyTruth]:
        with self._lock:
            return {
                key: RestKeyTruth(
                    requests=r.requests,
                    accepted=r.accepted,
                    rate_limited=r.rate_limited,
                    max_per_s=r.max_per_s,
                    max_accepted_per_s=r.max_accepted_per_s,
                    per_second={
                        to_rfc3339(datetime.fromtimestamp(sec, KST)): v[0] for sec, v in r.per_second.items()
                    },
                )
                for key, r in self._rest.items()
            }
