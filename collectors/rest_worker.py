"""`rest-collector`: Track A, one sweep of the day's universe every 10 minutes, 09:00-15:30 KST.

Data flow::

    clock -> day plan (calendar: open? -> universe at build_at) -> due 10-minute mark
      -> sweep thread: provider.snapshot(universe) -> QuoteSnapshot ... -> inbox
      -> loop thread: ReliableSender(ingest) <- QuoteSnapshot, GapMarker, SystemEvent (rest_report)
    marks nobody swept (down, hung, restarted) -> rest_marks.MarkLedger -> a gap marker each

When is asked of `observer.sessions` (the trading calendar, the universe build time, the mark due
at the injected clock's ``now``), from `on_tick`. Sweeps start at the marks and never drift with
their duration. A sweep still running at the next mark makes that mark a missed slot: a
``sweep_overrun`` event and a gap marker; marks that passed while this collector was not looking
(stopped, crashed, hung: ``collector_down``) each get a gap marker from the next run. Network work (calendar check, universe build, sweeps)
runs in background threads (`Worker.spawn`) so the loop keeps heartbeating; results come back
through the worker's bounded inbox because `ReliableSender` belongs to the loop thread.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from collectors.providers import IMarketDataProvider, build_provider
from collectors.rest_marks import MarkLedger
from collectors.rest_report import RestReport, SweepDone
from collectors.universe_build import UniverseBuilder, symbols_of
from observer.clock import KST
from observer.config import state_dir
from observer.reliable import ReliableSender, SeqGap, hop_endpoints
from observer.schema import DetailValue, QuoteSnapshot, SweepSummary, UniverseBuilt
from observer.sessions import MarketSessions, sweep_id_of
from observer.universe import LoadedUniverse, UniverseError, load_universe
from observer.worker_base import Worker

UNIVERSE_RETRY_S = 60.0
QUEUE_BOUND = 20_000  # quotes in flight between the sweep thread and the loop (a sweep is ~4,000)


@dataclass(frozen=True, slots=True)
class _DayChecked:
    day: date
    is_open: bool


@dataclass(frozen=True, slots=True)
class _UniverseReady:
    day: date
    symbols: dict[str, str]
    error: str = ""


@dataclass(frozen=True, slots=True)
class _Event:
    type: str
    severity: str
    message: str
    details: dict[str, DetailValue]


@dataclass
class _DayPlan:
    day: date
    is_open: bool | None = None
    checking: bool = False
    symbols: dict[str, str] | None = None
    building: bool = False
    build_after: datetime | None = None
    pending_slot: datetime | None = None
    last_slot: datetime | None = None
    caught_up: bool = False
    sweeps: list[str] = field(default_factory=list)


class RestCollectorWorker(Worker):
    """Track A collector. See the module docstring."""

    name = "rest-collector"
    tick_interval_s = 0.05
    inbox_size = QUEUE_BOUND

    def __init__(self, cfg: Any, *, provider: IMarketDataProvider | None = None, **kwargs: Any):
        super().__init__(cfg, **kwargs)
        self.provider = provider
        self.sender: ReliableSender | None = None
        self.sessions = MarketSessions.from_config(cfg)  # the loop's view; the broker is asked in a thread
        self._asking: MarketSessions | None = None  # the same calendar, asking the broker (a thread)
        self.ledger = MarkLedger(state_dir(cfg) / "track_a_marks.json")
        self._unreported: list[datetime] = []  # missed marks waiting for their day's universe
        self.plan: _DayPlan | None = None
        self._sweep_thread: threading.Thread | None = None
        self.report = RestReport(
            self.name, cfg.archive_provider, self.clock, self.make_event, self.next_event_id
        )
        self.counters = self.report.counters
        self.last_summary: SweepSummary | None = None
        self._bus_gaps: list[SeqGap] = []

    # -- lifecycle
    def on_start(self) -> None:
        assert self.ctx is not None
        if self.provider is None:
            self.provider = build_provider(
                self.cfg, self.secrets, clock=self.clock
            )  # ProviderUnavailable: exits
        data, ack = hop_endpoints(self.cfg, "ingest")
        self.sender = ReliableSender(
            self.ctx, self.cfg, self.name, data, ack, run_id=self.run_id, on_gap=self._on_gap
        )
        self.register(self.sender.ack_sub, self.sender.handle_acks)
        self.builder = UniverseBuilder(
            self.cfg, self.provider, self.clock, emit=self._post_event, built=self.inbox.put, source=self.name
        )
        self._asking = MarketSessions.from_config(self.cfg, fetch_holiday=self.provider.is_open)

    def on_tick(self) -> None:
        self._drain()
        while self._bus_gaps:
            self._send_bus_gap(self._bus_gaps.pop(0))
        self._plan(self.clock.now().astimezone(KST))
        if self.sender is not None:
            self.sender.pump()

    def on_stop(self) -> None:
        thread = self._sweep_thread
        if thread is not None:
            thread.join(timeout=self.cfg.supervisor.stop_timeout_s / 2)
        self._drain()
        if self.sender is not None:
            self.sender.wait_all_acked(timeout_s=min(3.0, self.cfg.supervisor.stop_timeout_s / 3))
            self.sender.close()
        if self.provider is not None:
            self.provider.close()

    def stats(self) -> dict[str, float]:
        out = dict(self.counters)
        if self.sender is not None:
            out["unacked"] = float(self.sender.unacked)
        return out

    # -- the day plan (loop thread)
    def _plan(self, now: datetime) -> None:
        day = now.date()
        plan = self.plan
        if plan is None or plan.day != day:
            plan = self.plan = _DayPlan(day)
        if plan.is_open is None:
            if not plan.checking:
                plan.checking = True
                self.spawn("calendar", self._check_day, day)
            return
        if not plan.caught_up:  # after a restart or across a day: marks passed while nobody looked
            plan.caught_up = True
            self._catch_up(self.sessions.due_mark(now) or now)
        self._report_missed()
        if not plan.is_open:
            return
        build_at = plan.build_after or self.sessions.universe_build_at(day)
        if plan.symbols is None and not plan.building and now >= build_at:
            plan.building = True
            self.spawn("universe", self._build_universe, day)
        slot = self.sessions.due_mark(now)
        if slot is not None and slot != plan.last_slot:
            self._catch_up(slot)  # the loop was held up (hung, stopped) across marks before this one
            plan.last_slot = slot
            self.ledger.account(slot)
            if plan.pending_slot is not None:
                self._missed(plan.pending_slot, slot, "universe_unavailable", plan.symbols or {})
            if self._sweep_running():
                self._missed(slot, slot + self.sessions.sweep_interval, "sweep_overrun", plan.symbols or {})
                plan.pending_slot = None
            else:
                plan.pending_slot = slot
        if plan.pending_slot is not None and plan.symbols and not self._sweep_running():
            self._start_sweep(plan.pending_slot, dict(plan.symbols))
            plan.sweeps.append(sweep_id_of(plan.pending_slot))
            plan.pending_slot = None

    def _catch_up(self, upto: datetime) -> None:
        missed = self.ledger.missed(self.sessions, upto)
        if missed:
            self.log.warning(
                "Track A marks passed unswept", extra={"first": missed[0].isoformat(), "marks": len(missed)}
            )
            self._unreported.extend(missed)
            self.ledger.account(missed[-1])

    def _report_missed(self) -> None:
        """A ``collector_down`` gap marker per missed mark, naming its day's universe (today's once
        it is loaded, an earlier day's from its snapshot files)."""
        plan = self.plan
        while self._unreported:
            mark = self._unreported[0]
            if plan is not None and mark.date() == plan.day:
                if plan.is_open and plan.symbols is None and plan.build_after is None:
                    return  # today's universe is on its way
                symbols = plan.symbols or {}
            else:
                symbols = self._universe_of(mark.date())
            self._unreported.pop(0)
            self._missed(mark, mark + self.sessions.sweep_interval, "collector_down", symbols)

    def _universe_of(self, day: date) -> dict[str, str]:
        found: dict[str, LoadedUniverse] = {}
        for market in self.cfg.provider.markets:
            try:
                found[market] = load_universe(Path(self.cfg.paths.universe_dir), day, market)
            except UniverseError:
                continue
        return symbols_of(found)

    def _sweep_running(self) -> bool:
        return self._sweep_thread is not None and self._sweep_thread.is_alive()

    def _start_sweep(self, slot: datetime, symbols: dict[str, str]) -> None:
        self._sweep_thread = self.spawn("sweep", self._sweep, slot, symbols)

    # -- background work (threads): results go through the inbox only
    def _check_day(self, day: date) -> None:
        """Ask the broker about `day` (answers are cached on disk for every worker) and, ahead of
        time, about the next weekday, so the other workers know a holiday before it begins."""
        asking = self._asking
        assert asking is not None
        is_open = asking.is_trading_day(day)
        self.post(_DayChecked(day, is_open))
        ahead = day + timedelta(days=1)
        while ahead.weekday() >= 5:
            ahead += timedelta(days=1)
        asking.is_trading_day(ahead)

    def _build_universe(self, day: date) -> None:
        try:
            symbols = symbols_of(self.builder.ensure(day))
            self.post(_UniverseReady(day, symbols))
        except UniverseError as e:
            self.post(_UniverseReady(day, {}, str(e)))

    def _sweep(self, slot: datetime, symbols: dict[str, str]) -> None:
        assert self.provider is not None
        sweep_id = sweep_id_of(slot)
        started_at = self.clock.now()
        t0 = time.monotonic()
        result = self.provider.snapshot(symbols, sweep_id, self._post_quote)
        self.post(
            SweepDone(sweep_id, slot, started_at, self.clock.now(), time.monotonic() - t0, symbols, result)
        )

    def _post_quote(self, quote: QuoteSnapshot) -> None:
        self.post(quote)  # blocks while the inbox is full: the sweep slows, the loop never does

    def _post_event(self, type_: str, severity: str, message: str, details: dict[str, DetailValue]) -> None:
        self.post(_Event(type_, severity, message, details))

    # -- results (loop thread)
    def _drain(self, limit: int = 5_000) -> None:
        self.drain_inbox(self._handle, limit)

    def _handle(self, item: object) -> None:
        match item:
            case QuoteSnapshot():
                self._send(item)
                self.counters["quotes_sent"] += 1
            case UniverseBuilt():
                self._send(item)
            case SweepDone():
                self._handle_sweep_done(item)
            case _DayChecked(day=day, is_open=is_open):
                self._handle_day_checked(day, is_open)
            case _UniverseReady():
                self._handle_universe(item)
            case _Event(type=t, severity=s, message=m, details=d):
                self._send(self.make_event(t, s, m, **d))

    def _handle_day_checked(self, day: date, is_open: bool) -> None:
        plan = self.plan
        if plan is None or plan.day != day:
            return
        plan.is_open, plan.checking = is_open, False
        if not is_open:
            self.log.info("market closed today; collecting nothing", extra={"day": str(day)})
            self._send(self.report.market_closed(day))

    def _handle_universe(self, ready: _UniverseReady) -> None:
        plan = self.plan
        if plan is None or plan.day != ready.day:
            return
        plan.building = False
        if ready.symbols:
            plan.symbols = ready.symbols
        else:
            self._send(
                self.make_event(
                    "universe_unavailable", "ERROR", f"no universe for {ready.day}: {ready.error}"
                )
            )
            plan.build_after = self.clock.now() + timedelta(seconds=UNIVERSE_RETRY_S)

    def _handle_sweep_done(self, done: SweepDone) -> None:
        self.last_summary = self.report.sweep_summary(done)
        for body in self.report.sweep_done(done, self.last_summary):
            self._send(body)

    def _missed(self, slot: datetime, end: datetime, reason: str, symbols: dict[str, str]) -> None:
        for body in self.report.missed(slot, end, reason, symbols):
            self._send(body)

    def _send(self, body: Any) -> None:
        assert self.sender is not None
        self.sender.send(body)

    def _on_gap(self, gap: SeqGap) -> None:
        # called from inside sender.send: sent from on_tick, never re-entrantly
        self._bus_gaps.append(gap)

    def _send_bus_gap(self, gap: SeqGap) -> None:
        self._send(self.report.bus_gap(gap))
