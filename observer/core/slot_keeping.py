"""The part of the core worker that keeps the day's slot table, the sampler and the day's universe
in step: a new trading day (universe, rules, slots resumed or seeded, the sampler checkpoint
restored), slot changes (the sampler watches what the table holds; overflow entries archived;
``SlotCommand`` on topic ``slots``), silent slot symbols, and the universe or a sweep arriving
after the start. Mixed into `worker.CoreWorker`, whose state it declares below.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

from observer.bus import SLOTS, EventPublisher
from observer.clock import KST, Clock
from observer.config import Config, key_slots
from observer.core.acks import Pending
from observer.core.activity import ActivityRanking
from observer.core.checkpoint import load_checkpoint
from observer.core.durable import DurableProgress
from observer.core.feed_outage import FeedOutage
from observer.core.gaps import MissedTradeDetector
from observer.core.records import RecordFactory
from observer.core.rules import RuleBook
from observer.core.sampler import Sampler
from observer.core.slots import Changes, SlotTable
from observer.core.triggers import TriggerRules
from observer.core.universe_day import DayUniverse
from observer.schema import ArchiveRecord, SystemEvent, Tick, UniverseBuilt
from observer.sessions import DailyWindow
from observer.universe import write_snapshot_once

SAMPLER_FILE = "sampler.json"
SLOTS_FILE = "slots.json"
#: the WS collector's word on an app key (several keys): its slots are lost / usable again
KEY_EVENTS = ("ws_key_failed", "ws_key_up")


class SlotKeeping:
    # the CoreWorker state this part works on
    cfg: Config
    clock: Clock
    events: EventPublisher | None
    provider: str
    factory: RecordFactory
    sampler: Sampler[Pending]
    slots: SlotTable
    activity: ActivityRanking
    universe: DayUniverse
    rules: RuleBook
    triggers: TriggerRules
    gaps: MissedTradeDetector
    durable: DurableProgress
    feed: FeedOutage
    _state_dir: Path
    _tb_hours: DailyWindow
    _day: date | None
    _blind_seeds: bool
    _rest_state: dict[str, Tick]
    _last_slot: dict[str, int]
    _next_publish: float
    _emit: Callable[..., None]  # (type, severity, message, **details): an archived core event
    _archive: Callable[[ArchiveRecord], int]

    def _start_day(self, day: date, *, resume: bool) -> None:
        now = self.clock.now()
        self._day = day
        self.universe = DayUniverse.load(self.cfg, day)
        for notice in self.universe.notices:
            self._emit(notice.type, notice.severity, notice.message, market=notice.market)
        self.rules = RuleBook(self.cfg, self.universe)
        self.triggers = TriggerRules(self.cfg.core)
        self.gaps = MissedTradeDetector(self.provider)
        for symbol in self.sampler.symbols():  # the previous day's windows closed at track_b.end
            self.sampler.drop(symbol)
        self._rest_state.clear()
        self._last_slot.clear()
        slots_path = self._state_dir / SLOTS_FILE
        self.activity.start_day(day)
        if resume and self.slots.load(slots_path, day, now):
            self._emit(
                "slots_resumed",
                "INFO",
                f"resumed {len(self.slots.slots)} slots from {slots_path}",
                version=self.slots.version,
            )
        else:
            self.slots.reset(day)
            seeded = self.slots.seed(self.activity.seed_order(self.universe.order), now)
            self._blind_seeds = not self.activity.informed
            self._emit(
                "slots_seeded",
                "INFO",
                f"new trading day {day}: {len(seeded.added)} slots seeded by {self.activity.source}",
                symbols=[a.symbol for a in seeded.added],
                seeded_by=self.activity.source,
            )
        checkpoint = load_checkpoint(self._state_dir / SAMPLER_FILE, day) if resume else None
        self.feed.restore(checkpoint.feeds if checkpoint is not None else {})
        if checkpoint is not None:
            self.sampler.restore_levels(checkpoint.levels)
            self.durable.restore(checkpoint.symbols)
        for symbol in self.slots.symbols():
            saved = checkpoint.symbols.get(symbol) if checkpoint is not None else None
            if saved is not None:
                self.sampler.restore(symbol, saved.next_start_ms, saved.last, saved.provider, saved.market)
                self.gaps.seed(saved.last)
            else:
                # a resumed slot without a durable sample: its windows run from the assignment
                # (bounded), so ticks resent from before this start are sampled, not dropped as late
                since = self.slots.slots[self.slots.symbols()[symbol]].since
                start = max(since, now - timedelta(seconds=self.cfg.core.resume_lookback_s))
                self.sampler.watch(symbol, min(start, now), self.provider, self._market_of(symbol))
                self._seed_from_rest(symbol)
        self.slots.save(slots_path)
        self._publish_slots(now)

    def _check_silent(self, now: datetime) -> None:
        if not self._tb_hours.contains(now):
            return
        session_start, _ = self._tb_hours.on(now.astimezone(KST).date())
        for a in self.slots.check_silent(now, session_start):
            self._emit(
                "slot_silent",
                "WARNING",
                f"{a.symbol} (slot {a.slot_number}) sent no tick for {self.cfg.track_b.silent_symbol_s:.0f}s",
                symbol=a.symbol,
                slot_number=a.slot_number,
            )

    def _apply(self, changes: Changes, now: datetime, *, force: bool = False) -> None:
        for cand in changes.overflow:
            self._archive(self.factory.line(self.slots.overflow_entry(cand, self.provider, now)))
        if not changes and not force:
            return
        for a in changes.removed:
            self.sampler.unwatch(a.symbol, now)
            self._last_slot[a.symbol] = a.slot_number
        for a in changes.added:
            self.gaps.forget(a.symbol)
            self.sampler.watch(a.symbol, now, self.provider, self._market_of(a.symbol))
            self._seed_from_rest(a.symbol)
        if changes:
            self._emit(
                "slot_change",
                "INFO",
                f"slots: +{[a.symbol for a in changes.added]} -{[a.symbol for a in changes.removed]}",
                added=[f"{a.slot_number}:{a.symbol}:{a.rule}" for a in changes.added],
                removed=[f"{a.slot_number}:{a.symbol}" for a in changes.removed],
                version=self.slots.version,
            )
        self.slots.save(self._state_dir / SLOTS_FILE)
        self._publish_slots(now)

    def _key_event(self, event: SystemEvent) -> None:
        """``ws_key_failed``: the key's slots are disabled, its symbols move (or overflow);
        ``ws_key_up``: its slots are usable again, seeded by activity."""
        key = event.details.get("key_index")
        if not isinstance(key, int) or key < 1:
            return
        numbers = set(key_slots(key, self.cfg.track_b.max_slots))
        now = self.clock.now()
        if event.type == "ws_key_up":
            if self.slots.enable(numbers):
                self._emit(
                    "slots_enabled",
                    "INFO",
                    f"app key {key} is up: slots {min(numbers)}-{max(numbers)} usable again",
                    key_index=key,
                )
                # free slots are seeded by activity, as at the start of a day
                seeded = self.slots.seed(self.activity.seed_order(self.universe.order), now)
                self._apply(seeded, now, force=True)
            return
        self.feed.key_failed(key, event.at)
        if numbers <= self.slots.disabled:
            return  # said again (a restarted collector): already moved
        changes = self.slots.disable(numbers, now)
        moved = [a.symbol for a in changes.added]
        overflow = [c.symbol for c in changes.overflow]
        self._emit(
            "slots_moved",
            "WARNING",
            f"app key {key} failed: {len(moved)} symbols moved to other keys' slots, "
            f"{len(overflow)} to the overflow ledger",
            key_index=key,
            moved=moved,
            overflow=overflow,
        )
        self._apply(changes, now, force=True)

    def _publish_slots(self, now: datetime) -> None:
        self._next_publish = self.clock.monotonic() + self.cfg.core.slot_publish_interval_s
        if self.events is not None:
            self.events.publish(SLOTS, self.slots.command(now))

    def _refresh_universe(self, reason: str) -> None:
        """Take the day's own universe once it exists (it may be built after the core started)."""
        if self.universe.refresh(self.cfg):
            self._emit(
                "universe_loaded",
                "INFO",
                f"universe for {self._day} loaded ({reason}): {len(self.universe)} symbols",
                symbols=len(self.universe),
            )
            now = self.clock.now()  # free slots are seeded as at the start of a day
            seeded = self.slots.seed(self.activity.seed_order(self.universe.order), now)
            self._blind_seeds = self._blind_seeds or (bool(seeded) and not self.activity.informed)
            self._apply(seeded, now)

    def _universe_arrived(self, built: UniverseBuilt) -> None:
        """A collector built a market's universe. Its snapshot is written into this host's
        ``universe_dir`` when it is not there yet (the core runs on another host than the
        collectors), then the day's universe is taken."""
        if built.snapshot is not None:
            try:
                path, written = write_snapshot_once(Path(self.cfg.paths.universe_dir), built.snapshot)
            except OSError as e:
                self._emit(
                    "universe_write_failed",
                    "ERROR",
                    f"cannot write the {built.market} universe for {built.day} sent by {built.source}: {e}",
                    market=built.market,
                )
            else:
                if written:
                    self._emit(
                        "universe_received",
                        "INFO",
                        f"{built.market} universe for {built.day} ({built.symbols} symbols) written to {path} "
                        f"from {built.source}'s message",
                        market=built.market,
                        symbols=built.symbols,
                    )
        self._refresh_universe("universe_built")

    def _sweep_done(self, sweep_id: str) -> None:
        """A Track A sweep is complete: its ranking is saved; seeds placed blind follow it."""
        self.slots.sweep_done(sweep_id)
        if self._day is None or not self.activity.sweep_done(sweep_id, self._day) or not self._blind_seeds:
            return
        self._blind_seeds = False
        now = self.clock.now()
        order = self.activity.seed_order(self.universe.order)
        self._apply(self.slots.replace_seeds(order[: self.slots.max_slots], now), now)

    def _seed_from_rest(self, symbol: str) -> None:
        state = self._rest_state.get(symbol)
        if state is not None:
            self.sampler.seed(state)

    def _market_of(self, symbol: str) -> str:
        default = self.cfg.provider.markets[0] if self.cfg.provider.markets else ""
        return self.universe.market_of(symbol, default)
