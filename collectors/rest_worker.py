"""`rest-collector`: Track A, one sweep of the day's universe every 10 minutes, 09:00-15:30 KST.

Data flow::

    clock -> day plan (calendar: open? -> universe at build_at) -> due 10-minute mark
      -> sweep thread: provider.snapshot(universe) -> QuoteSnapshot ... -> queue
      -> loop thread: ReliableSender(ingest) <- QuoteSnapshot, GapMarker, SystemEvent

When is asked of `observer.sessions` (the trading calendar, the universe build time, the mark due
at the injected clock's ``now``), from `on_tick`. Sweeps start at the marks and never drift with
their duration. A sweep still running at the next mark makes that mark a missed slot: a
``sweep_overrun`` event and a gap marker. Network work (calendar check, universe build, sweeps)
runs in background threads (`Worker.spawn`) so the loop keeps heartbeating; results come back
through the worker's bounded inbox because `ReliableSender` belongs to the loop thread.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from collectors.providers import IMarketDataProvider, SweepResult, build_provider
from collectors.universe_build import UniverseBuilder, symbols_of
from observer.calendar import TradingCalendar
from observer.clock import KST
from observer.reliable import ReliableSender, SeqGap, hop_endpoints
from observer.schema import DetailValue, GapMarker, QuoteSnapshot, SystemEvent
from observer.sessions import MarketSessions, sweep_id_of
from observer.universe import UniverseError
from observer.worker_base import Worker

UNIVERSE_RETRY_S = 60.0
QUEUE_BOUND = 20_000  # quotes in flight between the sweep thread and the loop (a sweep is ~4,000)


@dataclass(frozen=True, slots=True)
class _SweepDone:
    sweep_id: str
    slot: datetime
    started_at: datetime
    ended_at: datetime
    duration_s: float
    universe: dict[str, str]
    result: SweepResult


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
        self._broker_calendar: TradingCalendar | None = None
        self.plan: _DayPlan | None = None
        self._sweep_thread: threading.Thread | None = None
        self.counters: dict[str, float] = {
            "sweeps": 0,
            "quotes_sent": 0,
            "symbols_failed": 0,
            "missed_slots": 0,
            "bus_gaps": 0,
        }
        self.last_summary: dict[str, DetailValue] = {}
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
        self.builder = UniverseBuilder(self.cfg, self.provider, self.clock, emit=self._post_event)
        self._broker_calendar = TradingCalendar.from_config(self.cfg, fetch_holiday=self.provider.is_open)

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
        if not plan.is_open:
            return
        build_at = plan.build_after or self.sessions.universe_build_at(day)
        if plan.symbols is None and not plan.building and now >= build_at:
            plan.building = True
            self.spawn("universe", self._build_universe, day)
        slot = self.sessions.due_mark(now)
        if slot is not None and slot != plan.last_slot:
            plan.last_slot = slot
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

    def _sweep_running(self) -> bool:
        return self._sweep_thread is not None and self._sweep_thread.is_alive()

    def _start_sweep(self, slot: datetime, symbols: dict[str, str]) -> None:
        self._sweep_thread = self.spawn("sweep", self._sweep, slot, symbols)

    # -- background work (threads): results go through the inbox only
    def _check_day(self, day: date) -> None:
        """Ask the broker about `day` (answers are cached on disk for every worker) and, ahead of
        time, about the next weekday, so the other workers know a holiday before it begins."""
        calendar = self._broker_calendar
        assert calendar is not None
        is_open = calendar.is_trading_day(day)
        self.post(_DayChecked(day, is_open))
        ahead = day + timedelta(days=1)
        while ahead.weekday() >= 5:
            ahead += timedelta(days=1)
        calendar.is_trading_day(ahead)

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
            _SweepDone(sweep_id, slot, started_at, self.clock.now(), time.monotonic() - t0, symbols, result)
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
            case _SweepDone():
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
            self._send(
                SystemEvent(
                    record_id=f"evt-market-closed-{self.cfg.provider.name}-{day:%Y%m%d}",  # once per day
                    type="market_closed",
                    severity="INFO",
                    at=self.clock.now(),
                    source=self.name,
                    provider=self.cfg.provider.name,
                    message=f"{day} is not a trading day; Track A collects nothing",
                    details={"day": day.isoformat(), "weekday": day.strftime("%A")},
                )
            )

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

    def _handle_sweep_done(self, done: _SweepDone) -> None:
        r = done.result
        total = len(done.universe)
        rate = r.recorded / total if total else 0.0
        self.counters["sweeps"] += 1
        self.counters["symbols_failed"] += len(r.failed)
        self.last_summary = {
            "sweep_id": done.sweep_id,
            "duration_s": round(done.duration_s, 3),
            "calls": r.calls,
            "universe": total,
            "recorded": r.recorded,
            "failed": len(r.failed),
            "collection_rate": round(rate, 5),
            "rate_limited": r.rate_limited,
            "fallback_symbols": r.fallback_symbols,
            "errors_by_code": [f"{code}={n}" for code, n in sorted(r.errors_by_code.items())],
        }
        if r.failed:
            self._send(
                self._gap(
                    done.slot,
                    done.ended_at,
                    sorted(r.failed),
                    "rest_failed_after_retries",
                    f"gap-swing-{done.sweep_id}-failed",
                    {"sweep_id": done.sweep_id, "codes": sorted(set(r.failed.values()))},
                    done.universe,
                )
            )
        severity = "INFO" if rate >= 0.995 else "WARNING"
        self._send(
            self.make_event(
                "sweep_summary", severity, f"sweep {done.sweep_id}: {rate:.2%}", **self.last_summary
            )
        )

    # -- helpers
    def _missed(self, slot: datetime, end: datetime, reason: str, symbols: dict[str, str]) -> None:
        self.counters["missed_slots"] += 1
        sweep_id = sweep_id_of(slot)
        if reason == "sweep_overrun":
            self._send(
                self.make_event(
                    "sweep_overrun",
                    "WARNING",
                    f"sweep still running at {sweep_id}; slot skipped",
                    sweep_id=sweep_id,
                )
            )
        self._send(
            self._gap(
                slot,
                end,
                sorted(symbols),
                reason,
                f"gap-swing-{sweep_id}-missed",
                {"sweep_id": sweep_id},
                symbols,
            )
        )

    def _gap(
        self,
        start: datetime,
        end: datetime,
        symbols: list[str],
        reason: str,
        record_id: str,
        details: dict[str, DetailValue],
        universe: dict[str, str],
    ) -> GapMarker:
        markets = sorted({universe.get(s, "") for s in symbols} - {""})
        return GapMarker(
            record_id=record_id,
            track="swing",
            provider=self.cfg.provider.name,
            market=markets[0] if len(markets) == 1 else "KRX",
            symbols=symbols,
            start=start,
            end=end,
            reason=reason,
            detected_by=self.name,
            details=details,
        )

    def _send(self, body: Any) -> None:
        assert self.sender is not None
        self.sender.send(body)

    def _on_gap(self, gap: SeqGap) -> None:
        # called from inside sender.send: sent from on_tick, never re-entrantly
        self._bus_gaps.append(gap)

    def _send_bus_gap(self, gap: SeqGap) -> None:
        # the replay buffer overflowed (the core has been away for long): say exactly what was lost
        self.counters["bus_gaps"] += gap.count
        now = self.clock.now()
        self._send(
            GapMarker(
                record_id=f"gap-bus-{gap.producer}-{gap.run_id}-{gap.first}",
                track="bus",
                provider=self.cfg.provider.name,
                market="KRX",
                symbols=[],
                start=now,
                end=now,
                reason=gap.reason,
                detected_by=self.name,
                details={"run_id": gap.run_id, "first_seq": gap.first, "last_seq": gap.last},
            )
        )
