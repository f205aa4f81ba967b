"""`CoreWorker` (worker name ``observer``): ingest -> validate -> guard -> record -> route -> archive.

Sockets: the ingest `ReliableReceiver` (binds ``ingest`` / ``ingest_ack``), the archive
`ReliableSender` to the writer (connects ``archive`` / ``archive_ack``), an event SUB on
``mitigation`` and ``ctl.observer``, and the worker base's event PUB (``slots``, ``stats.observer``).

Upstream acks follow `observer.core.acks`: only when every archive record derived from a message,
and every sample of the windows its ticks fed, is acknowledged by the writer.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import msgspec

from observer.bus import MITIGATION, EventSubscriber, ctl_topic, ingest_decoder, stats_topic
from observer.clock import KST, Clock
from observer.config import Config, Secrets, state_dir, track_b_capacity
from observer.core.acks import AckLedger, Pending
from observer.core.activity import ActivityRanking
from observer.core.durable import DurableProgress
from observer.core.feed_outage import FeedOutage
from observer.core.gaps import MissedTradeDetector, restart_gap_marker
from observer.core.records import RecordFactory
from observer.core.rejections import RejectionReporter
from observer.core.rules import Finding, RuleBook
from observer.core.sampler import Sampler, tick_from_snapshot, to_ms
from observer.core.slot_keeping import KEY_EVENTS, SAMPLER_FILE, SLOTS_FILE, SlotKeeping
from observer.core.slots import Changes, SlotTable
from observer.core.stats import CoreCounters
from observer.core.triggers import TriggerRules
from observer.core.universe_day import RELOAD_S, DayUniverse
from observer.gap_markers import seq_gap
from observer.reliable import ReliableReceiver, ReliableSender, SeqGap, hop_endpoints
from observer.schema import (
    ArchiveRecord,
    Command,
    DayAnomalous,
    DetailValue,
    FeedStatus,
    GapMarker,
    MetricsSnapshot,
    MitigationLevel,
    OverflowEntry,
    QuoteSnapshot,
    SweepSummary,
    SystemEvent,
    Tick,
    TradeFrame,
    UniverseBuilt,
)
from observer.sessions import DailyWindow
from observer.worker_base import Worker

_ACTIVITY_FILE = "activity.json"
_INFLIGHT_MAX = 200_000


class CoreWorker(SlotKeeping, Worker):
    name = "observer"
    tick_interval_s = 0.05

    def __init__(self, cfg: Config, *, clock: Clock | None = None, secrets: Secrets | None = None):
        super().__init__(cfg, clock=clock, secrets=secrets)
        self.provider = cfg.archive_provider
        self.factory = RecordFactory(self.provider, self.clock, self.run_id)
        self.ledger = AckLedger()
        self.counts = CoreCounters()
        self.reporter = RejectionReporter(cfg.core.rejection_event_interval_s, self.clock, self.factory.event)
        self.slots = SlotTable(
            max_slots=track_b_capacity(cfg, self.secrets),
            min_dwell_s=cfg.track_b.min_dwell_s,
            silent_s=cfg.track_b.silent_symbol_s,
            candidate_ttl_s=cfg.core.candidate_ttl_s,
            overflow_interval_s=cfg.core.overflow_interval_s,
        )
        self._tb_hours = DailyWindow(cfg.track_b.start, cfg.track_b.end)
        self.sampler: Sampler[Pending] = Sampler(cfg.track_b.start, cfg.track_b.end, cfg.core.sample_grace_ms)
        self._rest_state: dict[str, Tick] = {}  # latest Track A state per symbol: seeds new slots
        self._last_slot: dict[str, int] = {}  # slot of a replaced symbol, for its last windows
        self.feed = FeedOutage()
        self._state_dir = state_dir(cfg)
        self.activity = ActivityRanking(self._state_dir / _ACTIVITY_FILE)  # seeds free slots
        self._blind_seeds = False  # seeds placed with no activity ranking: re-seeded by the first one
        self._current: Pending | None = None
        self._gaps_waiting: list[SeqGap] = []
        # bounded: while the writer is stalled the oldest entries fall off (the lag figure and the
        # checkpoint only lag behind; nothing archived depends on them)
        self.durable = DurableProgress(self._state_dir / SAMPLER_FILE, self.counts)
        self._day: date | None = None
        self._next_universe_check = 0.0
        self._hold_before_ms: int | None = None
        self._catchup_until = 0.0
        self._next_rebalance = 0.0
        self._next_publish = 0.0
        self._next_stats = 0.0
        self.universe = DayUniverse()
        self.rules = RuleBook(cfg, self.universe)
        self.triggers = TriggerRules(cfg.core)
        self.gaps = MissedTradeDetector(self.provider)

    # ------------------------------------------------------------------ lifecycle
    def on_start(self) -> None:
        assert self.ctx is not None
        ingest, ingest_ack = hop_endpoints(self.cfg, "ingest")
        archive, archive_ack = hop_endpoints(self.cfg, "archive")
        self.receiver = ReliableReceiver(
            self.ctx, self.cfg, self.name, ingest, ingest_ack, on_gap=self._gaps_waiting.append
        )
        self.sender = ReliableSender(
            self.ctx,
            self.cfg,
            self.name,
            archive,
            archive_ack,
            run_id=self.run_id,
            on_gap=self._gaps_waiting.append,
            transmit_on_send=False,  # on_tick pumps: what one loop turn archived goes out batched
        )
        self.subscriber = EventSubscriber(self.ctx, self.cfg, [MITIGATION, ctl_topic(self.name)])
        self.register(self.receiver.pull, self.handle_ingest)
        self.register(self.sender.ack_sub, self.handle_archive_acks)
        self.register(self.subscriber.sock, self.handle_events)
        now = self.clock.now()
        self._hold_before_ms = to_ms(now)
        self._catchup_until = self.clock.monotonic() + self.cfg.core.restart_catchup_ms / 1000
        self._start_day(now.astimezone(KST).date(), resume=True)

    def on_stop(self) -> None:
        self._archive_pending_gaps()
        self.sender.wait_all_acked(2.0)
        self._release_acks()
        self.slots.save(self._state_dir / SLOTS_FILE)
        self.receiver.close()
        self.sender.close()
        self.subscriber.close()

    def stats(self) -> dict[str, float]:
        return {
            "unacked_archive": float(self.sender.unacked) if hasattr(self, "sender") else 0.0,
            "pending_ingest": float(self.ledger.pending),
            "slots": float(len(self.slots.slots)),
        }

    # ------------------------------------------------------------------ ingest
    def handle_ingest(self) -> None:
        for env in self.receiver.receive(1_000):
            self._current = self.ledger.open(env.producer, env.run_id, env.seq)
            try:
                body = ingest_decoder.decode(env.body)
            except msgspec.DecodeError as e:
                why = f"undecodable ingest body from {env.producer}: {e}"[:200]
                self._report("rejection", Finding("decode", why, ""))
                self._current = None
                continue
            match body:
                case TradeFrame():
                    self.handle_trade_frame(body, env.producer, env.run_id, env.seq)
                case QuoteSnapshot():
                    self.handle_quote_snapshot(body)
                case FeedStatus():
                    self.feed.observe(body)
                    self._archive(self.factory.line(body.event()))
                case UniverseBuilt():
                    self._archive(self.factory.line(body.event()))
                    self._universe_arrived(body)
                case SweepSummary():
                    self._archive(self.factory.line(body.event()))
                    self._sweep_done(body.sweep_id)
                case DayAnomalous():
                    self._archive(self.factory.line(body.event()))
                case GapMarker():
                    self._archive_gap(body)
                case SystemEvent():
                    self.feed.observe_supervisor(body)
                    self._archive(self.factory.line(body))
                    if body.type in KEY_EVENTS:
                        self._key_event(body)
                case OverflowEntry() | MetricsSnapshot():
                    self._archive(self.factory.line(body))
            self._current = None

    def handle_trade_frame(self, frame: TradeFrame, producer: str, run_id: str, seq: int) -> None:
        self._archive(self.factory.raw(frame, producer, run_id, seq), lag_from=frame.received_at)
        restart = self.feed.frame_arrived(
            producer,
            run_id,
            frame.received_at,
            frame.ticks[-1].exchange_at if frame.ticks else None,
            frame.key_index,
        )
        self.durable.dirty = True  # the feed marks are in the checkpoint
        if restart is not None:
            symbols = sorted(self.slots.symbols())
            self._archive_gap(restart_gap_marker(restart, self.provider, frame.market, symbols, self.name))
        if frame.parse_error:
            self.counts.frames_parse_error += 1
            return
        for tick in frame.ticks:
            self._handle_tick(tick, frame)

    def _handle_tick(self, tick: Tick, frame: TradeFrame) -> None:
        verdict = self.rules.check_tick(tick)
        if verdict.rejected is not None:
            self._report("rejection", verdict.rejected)
            return
        for finding in verdict.guards:
            self._report("guard", finding)
        market = self.universe.market_of(tick.symbol, frame.market)
        marker = self.gaps.observe(tick, market)
        if marker is not None:
            self._archive_gap(marker)
        self.slots.note_tick(tick.symbol, tick.received_at)
        cand = self.triggers.on_tick(tick)
        if cand is not None:
            self.slots.offer(cand)
        if self.sampler.add_tick(
            tick,
            guard_passed=verdict.guard_passed,
            hold=self._current,
            provider=frame.provider,
            market=market,
        ):
            assert self._current is not None
            self._current.hold()

    def handle_quote_snapshot(self, snap: QuoteSnapshot) -> None:
        verdict = self.rules.check_snapshot(snap)
        if verdict.rejected is not None:
            self._report("rejection", verdict.rejected)
            return
        for finding in verdict.guards:
            self._report("guard", finding)
        self._archive(self.factory.swing(snap, verdict, self.sampler.level), lag_from=snap.received_at)
        state = tick_from_snapshot(snap)
        self._rest_state[snap.symbol] = state
        self.activity.observe(snap)
        self.sampler.seed(state)
        self.counts.sweep_symbol(snap.sweep_id, snap.symbol, len(self.universe))
        cand = self.triggers.on_snapshot(snap)
        self.slots.note_snapshot(snap.symbol, snap.sweep_id, self.clock.now())
        if cand is not None:
            self.slots.offer(cand)
        elif not self.universe.available and self.slots.symbols().get(snap.symbol) is None:
            self._apply(self.slots.seed([snap.symbol], self.clock.now()), self.clock.now())

    # ------------------------------------------------------------------ archive side
    def handle_archive_acks(self) -> None:
        self.sender.handle_acks()
        self._release_acks()

    def _archive(self, record: ArchiveRecord, lag_from: datetime | None = None) -> int:
        seq = self.sender.send(record)
        self.counts.record(record.track)
        if self._current is not None and seq > self._current.need:
            self._current.need = seq
        if lag_from is not None:
            self.durable.sent_received_at(seq, lag_from)
        return seq

    def _release_acks(self) -> None:
        acked = self.sender.acked
        self.durable.advance(acked, self.clock.now())
        releasable = self.ledger.releasable(acked)
        if not releasable:
            return
        if self._day is not None:
            self.durable.save_if_changed(self._day, self.sampler.level_schedule(), self.feed.marks)
        for producer, run_id, seq in releasable:
            self.receiver.ack(producer, run_id, seq)

    def _archive_pending_gaps(self) -> None:
        while self._gaps_waiting:
            gap = self._gaps_waiting.pop(0)
            self.counts.bus_gaps += 1
            self._archive_gap(
                seq_gap(gap, provider=self.provider, detected_by=self.name, at=self.clock.now())
            )

    def _archive_gap(self, marker: GapMarker) -> None:
        self.counts.gap(marker)
        self._archive(self.factory.line(marker))

    # ------------------------------------------------------------------ events
    def handle_events(self) -> None:
        while (item := self.subscriber.recv_nowait()) is not None:
            _topic, body = item
            match body:
                case MitigationLevel():
                    self._set_level(body.level)
                case Command(action="pin", target=symbol):
                    ok, message, changes = self.slots.pin(symbol.strip().upper(), self.clock.now())
                    self._emit("slot_pin", "INFO" if ok else "WARNING", message, symbol=symbol, ok=ok)
                    self._apply(changes, self.clock.now(), force=True)
                case Command(action="unpin", target=symbol):
                    ok, message = self.slots.unpin(symbol.strip().upper())
                    self._emit("slot_unpin", "INFO" if ok else "WARNING", message, symbol=symbol, ok=ok)
                    self._apply(Changes(), self.clock.now(), force=ok)
                case _:
                    pass

    def _set_level(self, level: int) -> None:
        if level == self.sampler.level:
            return
        before = self.sampler.level
        effective_ms = self.sampler.set_level(level, self.clock.now())
        self.durable.dirty = True
        self._emit(
            "sampling_level",
            "INFO",
            f"mitigation level {before} -> {level}: sampling window changes",
            level=level,
            effective_at_ms=effective_ms,
        )

    # ------------------------------------------------------------------ periodic work
    def on_tick(self) -> None:
        now = self.clock.now()
        mono = self.clock.monotonic()
        if self._day is not None and now.astimezone(KST).date() != self._day:
            self._close_windows(now, mono)
            self._start_day(now.astimezone(KST).date(), resume=False)
        self._archive_pending_gaps()
        self._close_windows(now, mono)
        if mono >= self._next_universe_check:
            self._next_universe_check = mono + RELOAD_S
            self._refresh_universe("periodic check")
        if mono >= self._next_rebalance:
            self._next_rebalance = mono + self.cfg.core.slot_rebalance_s
            self._apply(self.slots.rebalance(now), now)
            self._check_silent(now)
        for event in self.reporter.due():
            self._archive(self.factory.line(event))
        self.sender.pump()
        self._release_acks()
        self.receiver.republish_acks()
        if mono >= self._next_publish:
            self._publish_slots(now)
        if mono >= self._next_stats:
            self._next_stats = mono + self.cfg.core.stats_interval_s
            self._publish_stats(now)

    def _close_windows(self, now: datetime, mono: float) -> None:
        hold_before = self._hold_before_ms if mono < self._catchup_until else None
        silent = self.feed.silent_since(
            now, self.cfg.core.sample_grace_ms, self.cfg.core.feed_silence_hold_ms
        )
        for sample in self.sampler.due(now, hold_before, None if silent is None else to_ms(silent)):
            slot = self.slots.slot_of(sample.symbol)
            if slot is None:  # replaced: its last windows still carry the slot they were sampled in
                slot = self._last_slot.get(sample.symbol)
            if self.feed.is_paused(sample.symbol):  # the WS feed failed for good: scalp recording pauses
                self.counts.samples_paused += 1
                self.sampler.discard(sample)
                continue
            seq = self._archive(
                self.factory.scalp(
                    sample, sample.level, slot, gap=self.feed.is_gap(sample.start, sample.symbol)
                )
            )
            self.durable.sent_sample(seq, sample)
            for hold in sample.holds:
                hold.settle(seq)
            sample.holds = []
        for hold in self.sampler.released:
            hold.settle(None)
        self.sampler.released.clear()

    def _publish_stats(self, now: datetime) -> None:
        if self.events is None:
            return
        self.events.publish(
            stats_topic(self.name),
            self.counts.snapshot(
                now,
                expected=self.sampler.expected,
                slot_of=self.slots.symbols(),
                findings=dict(self.reporter.counts),
                ingest_accepted=self.receiver.accepted,
                ingest_duplicates=self.receiver.duplicates,
                ingest_malformed=self.receiver.malformed,
                late_ticks=self.sampler.late_ticks,
                archive_resent=self.sender.resent,
                archive_abandoned=self.sender.abandoned,
                missed_trade_volume=self.gaps.missed_volume,
                mitigation_level=self.sampler.level,
                slots_used=len(self.slots.slots),
                archive_unacked=self.sender.unacked,
                ingest_pending=self.ledger.pending,
                ingest_held_by_windows=self.ledger.held,
                universe_size=len(self.universe),
            ),
        )

    # ------------------------------------------------------------------ helpers
    def _report(self, kind: str, finding: Finding) -> None:
        event = self.reporter.report(kind, finding)
        if event is not None:
            self._archive(self.factory.line(event))

    def _emit(self, type_: str, severity: str, message: str, **details: Any) -> None:
        clean: dict[str, DetailValue] = dict(details)
        self.log.info(message, extra={"event": type_})
        self._archive(self.factory.line(self.factory.event(type_, severity, message, clean)))


__all__ = ["CoreWorker"]
