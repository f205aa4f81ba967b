"""The Track B slot manager: which (at most ``track_b.max_slots``) symbols are watched.

Candidates (`observer.core.triggers`) are collected and placed by `rebalance`, strongest first
(priority, then score). A candidate takes a free slot, else replaces the weakest *evictable*
slot that it outranks, else goes to the overflow ledger (`OverflowEntry`, at most one per symbol
per ``core.overflow_interval_s``). A slot is evictable when it is not pinned and either its
minimum dwell (``track_b.min_dwell_s``) has passed, it is a seed, or its symbol went silent. A
slot's strength is its symbol's live candidate (younger than ``core.candidate_ttl_s``); without one
it ranks below every trigger.

A Track A sweep's candidates arrive one snapshot at a time over the whole sweep. While a sweep is in
progress, only slots whose symbol the sweep has reached without a live candidate can be evicted, and
candidates left without a slot are not sent to the overflow ledger yet; who of the candidates wins
is settled once the sweep is over. Judged on part of the sweep, a symbol evicted first (not reached
yet, or outranked by an early surge) came back seconds later on its own, leaving a hole in its data
for nothing. The protection ends when the sweep is done (`sweep_done`) or has sent nothing for
``SWEEP_QUIET`` (a collector that died mid-sweep).

Manual pins (operator) take a free slot, else replace the weakest non-pinned slot *regardless of
dwell* (the operator's explicit request wins); pinned symbols are never evicted. A symbol that has
sent no tick for ``track_b.silent_symbol_s`` during the session is reported once and becomes the
first to be replaced.

Several app keys: slots ``1..max_slots`` are the keys' ranges one after the other. A key that failed
(the WS collector's ``ws_key_failed``) has its slots *disabled* (`disable`): their symbols move to
free slots of the other keys, strongest first, and what finds none goes to the overflow ledger;
nothing is placed in a disabled slot until the key is up again (`enable`).

The table is saved to ``state_dir/slots.json`` (write, fsync, rename) at every change, so a
restarted core resumes it on the same trading day (disabled slots across days too: a key stays
failed until its session is up again). `command` renders it as the idempotent
`SlotCommand` the WS collector follows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import msgspec

from observer import record_ids
from observer.atomic import write_atomic
from observer.core.triggers import RULE_PRIORITY, Candidate
from observer.schema import OverflowEntry, SlotAssignment, SlotCommand

_STALE_RANK = (6, 0.0)
_SEED_RANK = (5, 0.0)
_SILENT_RANK = (7, 0.0)
SWEEP_QUIET = timedelta(seconds=30)


class SlotState(msgspec.Struct, frozen=True, kw_only=True):
    day: date
    version: int
    slots: list[SlotAssignment]
    disabled: list[int] = []  # slots of failed app keys


@dataclass(slots=True)
class Changes:
    added: list[SlotAssignment] = field(default_factory=list)
    removed: list[SlotAssignment] = field(default_factory=list)
    overflow: list[Candidate] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed)


class SlotTable:
    def __init__(
        self,
        *,
        max_slots: int,
        min_dwell_s: float,
        silent_s: float,
        candidate_ttl_s: float,
        overflow_interval_s: float,
    ):
        self.max_slots = max_slots
        self._dwell = timedelta(seconds=min_dwell_s)
        self._silent = timedelta(seconds=silent_s)
        self._ttl = timedelta(seconds=candidate_ttl_s)
        self._overflow_every = timedelta(seconds=overflow_interval_s)
        self.slots: dict[int, SlotAssignment] = {}
        self.disabled: set[int] = set()  # slot numbers of failed app keys
        self.version = 0
        self.day: date | None = None
        self.candidates: dict[str, Candidate] = {}
        self._last_tick: dict[str, datetime] = {}
        self._silent_symbols: set[str] = set()
        self._overflowed_at: dict[str, datetime] = {}
        self._sweep: str | None = None  # the Track A sweep in progress
        self._swept: set[str] = set()  # symbols it has reached
        self._sweep_seen_at = datetime.min.replace(tzinfo=UTC)
        self._sweeps_done: set[str] = set()

    # -- queries
    def symbols(self) -> dict[str, int]:
        return {a.symbol: n for n, a in self.slots.items()}

    def slot_of(self, symbol: str) -> int | None:
        for n, a in self.slots.items():
            if a.symbol == symbol:
                return n
        return None

    def command(self, at: datetime, paused: bool = False) -> SlotCommand:
        return SlotCommand(
            version=self.version, at=at, slots=[self.slots[n] for n in sorted(self.slots)], paused=paused
        )

    # -- inputs
    def offer(self, cand: Candidate) -> None:
        current = self.candidates.get(cand.symbol)
        if current is None or cand.rank <= current.rank or cand.at - current.at > self._ttl:
            self.candidates[cand.symbol] = cand

    def note_tick(self, symbol: str, at: datetime) -> None:
        self._last_tick[symbol] = at
        self._silent_symbols.discard(symbol)

    def note_snapshot(self, symbol: str, sweep_id: str, at: datetime) -> None:
        """The triggers have judged `symbol`'s snapshot of sweep `sweep_id`."""
        if sweep_id in self._sweeps_done:
            return
        if sweep_id != self._sweep:
            self._sweep, self._swept = sweep_id, set()
        self._swept.add(symbol)
        self._sweep_seen_at = at

    def sweep_done(self, sweep_id: str) -> None:
        self._sweeps_done.add(sweep_id)
        if sweep_id == self._sweep:
            self._sweep, self._swept = None, set()

    def seed(self, symbols: list[str], at: datetime) -> Changes:
        changes = Changes()
        taken = self.symbols()
        for symbol in symbols:
            if symbol in taken:
                continue
            free = self._free_slot()
            if free is None:
                break
            self._assign(free, symbol, "seed", at, pinned=False, changes=changes)
            taken[symbol] = free
        return self._bump(changes)

    def replace_seeds(self, symbols: list[str], at: datetime) -> Changes:
        """Seed slots (not pinned) whose symbol is not among `symbols` give way, in slot order, to
        the symbols of `symbols` not watched yet, in their order (the activity ranking's top). A seed
        whose symbol has a live trigger candidate stays: the next rebalance would only bring it back."""
        changes = Changes()
        taken = self.symbols()
        wanted = [s for s in symbols if s not in taken]
        keep = set(symbols) | {s for s in self.candidates if self._live(s, at)}
        for n in sorted(self.slots):
            a = self.slots[n]
            if not wanted:
                break
            if a.rule == "seed" and not a.pinned and a.symbol not in keep:
                changes.removed.append(self.slots.pop(n))
                self._assign(n, wanted.pop(0), "seed", at, pinned=False, changes=changes)
        return self._bump(changes)

    def pin(self, symbol: str, at: datetime) -> tuple[bool, str, Changes]:
        changes = Changes()
        n = self.slot_of(symbol)
        if n is not None:
            if not self.slots[n].pinned:
                self.slots[n] = msgspec.structs.replace(self.slots[n], pinned=True)
                self.version += 1
            return True, f"{symbol} pinned in slot {n}", changes
        free = self._free_slot()
        if free is None:
            victims = [m for m, a in self.slots.items() if not a.pinned]
            if not victims:
                return False, f"cannot pin {symbol}: all {self.max_slots} slots are pinned", changes
            free = max(
                victims, key=lambda m: (self._slot_rank(self.slots[m], at), -self.slots[m].since.timestamp())
            )
            changes.removed.append(self.slots.pop(free))
        self._assign(free, symbol, "manual", at, pinned=True, changes=changes)
        return True, f"{symbol} pinned in slot {free}", self._bump(changes)

    def unpin(self, symbol: str) -> tuple[bool, str]:
        n = self.slot_of(symbol)
        if n is None or not self.slots[n].pinned:
            return False, f"{symbol} is not pinned"
        self.slots[n] = msgspec.structs.replace(self.slots[n], pinned=False)
        self.version += 1
        return True, f"{symbol} unpinned (slot {n} kept until replaced)"

    # -- decisions
    def check_silent(self, now: datetime, session_start: datetime) -> list[SlotAssignment]:
        """Slots whose symbol sent nothing for the silent period (each reported once)."""
        found = []
        for a in self.slots.values():
            if a.symbol in self._silent_symbols:
                continue
            since = max(a.since, session_start, self._last_tick.get(a.symbol, a.since))
            if now - since >= self._silent:
                self._silent_symbols.add(a.symbol)
                found.append(a)
        return found

    def rebalance(self, now: datetime) -> Changes:
        changes = Changes()
        for symbol in [s for s, c in self.candidates.items() if now - c.at > self._ttl]:
            del self.candidates[symbol]
        taken = self.symbols()
        waiting = sorted((c for c in self.candidates.values() if c.symbol not in taken), key=lambda c: c.rank)
        sweeping = self._sweeping(now)
        for cand in waiting:
            free = self._free_slot()
            if free is None:
                free = self._victim(cand, now)
                if free is not None:
                    changes.removed.append(self.slots.pop(free))
            if free is None:
                if sweeping:
                    continue  # the sweep may still free a slot for it
                last = self._overflowed_at.get(cand.symbol)
                if last is None or now - last >= self._overflow_every:
                    self._overflowed_at[cand.symbol] = now
                    changes.overflow.append(cand)
                continue
            self._assign(free, cand.symbol, cand.rule, now, pinned=False, changes=changes)
        return self._bump(changes)

    def overflow_entry(self, cand: Candidate, provider: str, at: datetime) -> OverflowEntry:
        return OverflowEntry(
            record_id=record_ids.overflow(cand.symbol, at),
            at=at,
            provider=provider,
            symbol=cand.symbol,
            rule=cand.rule,
            score=cand.score,
            priority=cand.priority,
        )

    def disable(self, numbers: set[int], at: datetime) -> Changes:
        """The slots `numbers` (a failed key's) take no symbol; theirs move to free slots, strongest
        first, or go to the overflow ledger."""
        changes = Changes()
        numbers = {n for n in numbers if 1 <= n <= self.max_slots} - self.disabled
        if not numbers:
            return changes
        self.disabled |= numbers
        moving = [self.slots.pop(n) for n in sorted(numbers) if n in self.slots]
        moving.sort(key=lambda a: (not a.pinned, self._slot_rank(a, at)))
        for a in moving:
            changes.removed.append(a)
            free = self._free_slot()
            if free is not None:
                self._assign(free, a.symbol, a.rule, at, pinned=a.pinned, changes=changes)
                continue
            cand = self._live(a.symbol, at) or Candidate(
                a.symbol, a.rule if a.rule in RULE_PRIORITY else "seed", 0.0, at
            )
            self._overflowed_at[a.symbol] = at
            changes.overflow.append(cand)
        if not changes:
            self.version += 1  # the disabled set is part of the saved table
        return self._bump(changes)

    def enable(self, numbers: set[int]) -> bool:
        """The slots `numbers` (a key up again) take symbols again. Whether anything changed."""
        if not numbers & self.disabled:
            return False
        self.disabled -= numbers
        self.version += 1
        return True

    # -- persistence
    def save(self, path: Path) -> None:
        state = SlotState(
            day=self.day or date.min,
            version=self.version,
            slots=[self.slots[n] for n in sorted(self.slots)],
            disabled=sorted(self.disabled),
        )
        write_atomic(path, msgspec.json.encode(state), fsync=True)

    def load(self, path: Path, day: date, at: datetime) -> bool:
        """Resume the table saved for `day` at `at`. False when there is none (or it is another
        day's). The silent period of a resumed slot runs from `at`: its last tick before the restart
        is not known, and counting from its assignment flagged every slot silent at once."""
        try:
            state = msgspec.json.decode(path.read_bytes(), type=SlotState)
        except (OSError, msgspec.DecodeError):
            return False
        self.disabled = {n for n in state.disabled if 1 <= n <= self.max_slots}  # whatever the day
        if state.day != day:
            return False
        self.day = day
        self.version = state.version
        self.slots = {a.slot_number: a for a in state.slots[: self.max_slots]}
        self._last_tick = {a.symbol: at for a in self.slots.values()}
        return True

    def reset(self, day: date) -> None:
        self.day = day
        self.slots.clear()
        self.candidates.clear()
        self._last_tick.clear()
        self._silent_symbols.clear()
        self._overflowed_at.clear()
        self._sweep, self._swept = None, set()
        self._sweeps_done.clear()
        self.version += 1

    # -- internals
    def _free_slot(self) -> int | None:
        for n in range(1, self.max_slots + 1):
            if n not in self.slots and n not in self.disabled:
                return n
        return None

    def _assign(
        self, n: int, symbol: str, rule: str, at: datetime, *, pinned: bool, changes: Changes
    ) -> None:
        a = SlotAssignment(slot_number=n, symbol=symbol, rule=rule, since=at, pinned=pinned)
        self.slots[n] = a
        self._silent_symbols.discard(symbol)
        self._last_tick.pop(symbol, None)
        changes.added.append(a)

    def _live(self, symbol: str, now: datetime) -> Candidate | None:
        cand = self.candidates.get(symbol)
        return cand if cand is not None and now - cand.at <= self._ttl else None

    def _slot_rank(self, a: SlotAssignment, now: datetime) -> tuple[int, float]:
        if a.symbol in self._silent_symbols:
            return _SILENT_RANK
        cand = self._live(a.symbol, now)
        if cand is not None:
            return cand.rank
        return _SEED_RANK if a.rule == "seed" else _STALE_RANK

    def _sweeping(self, now: datetime) -> bool:
        return self._sweep is not None and now - self._sweep_seen_at <= SWEEP_QUIET

    def _evictable(self, a: SlotAssignment, now: datetime) -> bool:
        if a.pinned:
            return False
        if self._sweeping(now) and (a.symbol not in self._swept or self._live(a.symbol, now)):
            return False
        return a.rule == "seed" or a.symbol in self._silent_symbols or now - a.since >= self._dwell

    def _victim(self, cand: Candidate, now: datetime) -> int | None:
        best: tuple[tuple[int, float], float, int] | None = None
        for n, a in self.slots.items():
            if not self._evictable(a, now):
                continue
            rank = self._slot_rank(a, now)
            if rank <= cand.rank:
                continue
            key = (rank, -a.since.timestamp(), n)
            if best is None or key > best:
                best = key
        return None if best is None else best[2]

    def _bump(self, changes: Changes) -> Changes:
        if changes:
            self.version += 1
        return changes
