"""Health is about data, not processes: the status (green/amber/red), alert episodes and the
"anomalous day" verdict, evaluated once per monitor sample from what the `StatsBook` knows.

Pure apart from its inputs: time comes from ``Inputs.at`` (the injected clock); market hours and
the trading calendar are asked of `observer.sessions`. Thresholds and windows are the DESIGN numbers, gathered in `Policy`.

Data freshness (red + an alert, even while every process is alive), during a session:

* ``scalp_stale``   a slot's latest scalp sample is older than ``scalp_stale_windows`` sampling
                    windows (0.5 / 1 / 2 s at level 0 / 1 / 2);
* ``swing_missing`` the latest swing sweep (the mark the core last saw records of; remembered when
                    the core restarts) is older than the latest mark that is at least
                    ``swing_sweep_grace_s`` old (marks from `observer.sessions`);
* ``symbols_silent`` acked-but-silent slot symbols reach ``silent_red_fraction`` of the slots in use;
* ``ws_silent`` / ``ws_disconnected`` / ``scalp_paused`` the feed itself is gone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from observer.clock import KST
from observer.config import Config
from observer.schema import CoreStats, HealthValues, Severity, SlotCommand, WriterStats, WsCollectorStats
from observer.sessions import MarketSessions
from sinks.monitor.freshness import SilentSymbols, SlotProgress
from sinks.monitor.mitigation import ConditionRun
from sinks.monitor.policy import ALERT_RULES, REASON_TEXT, Policy
from sinks.monitor.stats import History, StatsBook

GREEN, AMBER, RED = 0, 1, 2
STATUS_NAMES = {GREEN: "green", AMBER: "amber", RED: "red"}
SAMPLE_WINDOW_S = {0: 0.5, 1: 1.0, 2: 2.0}
_Flag = Callable[[str, int, str], None]
SILENT_HOLD_FACTOR = 5  # a symbol_silent report counts for 5 x track_b.silent_symbol_s (fallback only)


@dataclass(frozen=True, slots=True)
class Inputs:
    at: datetime
    cpu_pct: float | None
    memory_pct: float | None
    disk_usage_pct: float | None
    level: int
    slots: SlotCommand | None


def writer_latency_ms(writer: WriterStats | None) -> float | None:
    """The disk write latency the rules watch: the writer's recent p99 (else its last commit)."""
    if writer is None:
        return None
    return writer.fsync_p99_ms if writer.fsync_p99_ms is not None else writer.fsync_last_ms


@dataclass(frozen=True, slots=True)
class AlertState:
    key: str
    active: bool
    severity: Severity
    telegram: bool
    text: str


@dataclass(slots=True)
class HealthReport:
    status: int
    reasons: dict[str, int]
    details: dict[str, str]
    values: HealthValues
    alerts: list[AlertState]
    anomalous: list[str] | None = None

    @property
    def status_name(self) -> str:
        return STATUS_NAMES[self.status]


@dataclass(slots=True)
class DayCounters:
    day: date
    reconnect_base: float | None = None
    reconnects_before: int = 0  # counted by an earlier run of this monitor today (its memory)
    disconnected_s: float = 0.0
    silences: int = 0
    anomalous_reported: bool = False


@dataclass(slots=True)
class HealthRules:
    cfg: Config
    book: StatsBook
    sessions: MarketSessions
    policy: Policy = field(default_factory=Policy)
    _b_expected: History = field(init=False)
    _b_written: History = field(init=False)
    _cpu_alert: ConditionRun = field(default_factory=ConditionRun)
    _cpu_anomalous: ConditionRun = field(default_factory=ConditionRun)
    _day: DayCounters | None = None
    _last_at: datetime | None = None
    _slot_progress: SlotProgress = field(default_factory=SlotProgress)
    _silent: SilentSymbols = field(init=False)
    _first_at: datetime | None = None
    sweep_mark_s: float | None = None  # the newest sweep mark ever reported (outlives a core restart)

    def __post_init__(self) -> None:
        keep_s = self.policy.track_b_window_s * 2
        self._b_expected = History(keep_s)
        self._b_written = History(keep_s)
        self._silent = SilentSymbols(hold_s=SILENT_HOLD_FACTOR * self.cfg.track_b.silent_symbol_s)

    @property
    def _max_gap_s(self) -> float:
        return max(3 * self.cfg.monitor.sample_interval_s, self.cfg.monitor.stats_stale_s)

    # -- inputs outside the sample
    def note_silence(self, at: datetime) -> None:
        """A worker's heartbeat stayed silent for ``heartbeat_silence_s`` (a "log silence")."""
        self._roll_day(at).silences += 1

    def note_silent_symbol(self, symbol: str, at: datetime) -> None:
        """The ws-collector reported `symbol` acknowledged but silent (event ``symbol_silent``)."""
        self._silent.report(symbol, at)

    # -- sessions
    def track_a_open(self, at: datetime) -> bool:
        core = self.book.latest(CoreStats)
        told = core.track_a_open if core is not None else None
        return self.sessions.track_a_open(at) if told is None else told

    def track_b_open(self, at: datetime) -> bool:
        core, ws = self.book.latest(CoreStats), self.book.latest(WsCollectorStats)
        told = core.track_b_open if core is not None else None
        if told is None and ws is not None:
            told = ws.in_session
        return self.sessions.track_b_open(at) if told is None else told

    def _roll_day(self, at: datetime) -> DayCounters:
        day = at.astimezone(KST).date()
        if self._day is None or self._day.day != day:
            self._day = DayCounters(day)
        return self._day

    # -- rates
    def track_a_rate(self) -> float | None:
        core = self.book.latest(CoreStats)
        if core is None:
            return None
        if core.track_a_sweep_recorded is None or not core.track_a_sweep_universe:
            return core.track_a_collection_rate
        return core.track_a_sweep_recorded / core.track_a_sweep_universe

    def track_b_rate(self, at: datetime) -> float | None:
        slack_s = self.cfg.monitor.sample_interval_s  # sample granularity, not more
        expected = self._b_expected.delta(at, self.policy.track_b_window_s, slack_s)
        written = self._b_written.delta(at, self.policy.track_b_window_s, slack_s)
        if expected is None or written is None or expected <= 0:
            return None
        return min(written / expected, 1.0)

    def _b_rate_so_far(self) -> float | None:
        expected, written = self._b_expected.delta_so_far(), self._b_written.delta_so_far()
        if not expected or written is None:
            return None
        return min(written / expected, 1.0)

    def reconnects_today(self) -> int | None:
        day = self._day
        if day is None or day.reconnect_base is None:
            return None
        total = self.book.total(WsCollectorStats, "reconnects")
        return None if total is None else day.reconnects_before + int(total - day.reconnect_base)

    def day_counters(self, at: datetime) -> DayCounters:
        """Today's counters (the monitor's memory saves and restores them)."""
        return self._roll_day(at)

    # -- the evaluation
    def evaluate(self, inp: Inputs) -> HealthReport:
        at = inp.at
        if self._first_at is None:
            self._first_at = at
        day = self._roll_day(at)
        elapsed_s = 0.0 if self._last_at is None else max((at - self._last_at).total_seconds(), 0.0)
        self._last_at = at
        book, pol, mon = self.book, self.policy, self.cfg.monitor
        reasons: dict[str, int] = {}
        details: dict[str, str] = {}

        def flag(key: str, severity: int, text: str) -> None:
            reasons[key] = max(severity, reasons.get(key, 0))
            details[key] = text

        core, ws, writer = book.latest(CoreStats), book.latest(WsCollectorStats), book.latest(WriterStats)
        for history, name in ((self._b_expected, "samples_expected"), (self._b_written, "samples_written")):
            total = book.total(CoreStats, name)
            if total is not None:
                history.add(at, total)
        reconnect_total = book.total(WsCollectorStats, "reconnects")
        if day.reconnect_base is None and reconnect_total is not None:
            day.reconnect_base = reconnect_total
        a_open, b_open = self.track_a_open(at), self.track_b_open(at)
        a_rate, b_rate = self.track_a_rate(), self.track_b_rate(at)
        reconnects = self.reconnects_today()
        connected = ws.connected if ws is not None else None

        # data freshness
        unwritten_windows = self._slot_progress.update(core.slots) if core is not None else 0
        if b_open:
            window_s = SAMPLE_WINDOW_S.get(inp.level, 2.0) * mon.scalp_stale_windows
            oldest = core.track_b_oldest_sample_age_s if core is not None else None
            if oldest is not None and oldest > window_s:
                flag("scalp_stale", RED, f"oldest slot sample {oldest:.1f} s old (> {window_s:g} s)")
            elif oldest is None and unwritten_windows > mon.scalp_stale_windows:
                flag(
                    "scalp_stale",
                    RED,
                    f"a slot has gone {unwritten_windows} sampling windows without a sample",
                )
            self._check_silent(inp, flag)
            if inp.slots is not None and inp.slots.paused:
                flag("scalp_paused", RED, "the slot table is paused (WS down too long)")
            if connected is False:
                day.disconnected_s += elapsed_s
                flag("ws_disconnected", RED, "WebSocket disconnected")
            frame_age = ws.last_frame_age_s if ws is not None else None
            if connected and frame_age is not None and frame_age > self.cfg.track_b.receive_watchdog_s:
                flag("ws_silent", RED, f"no WebSocket frame for {frame_age:.0f} s")
        if a_open:
            self._check_swing(at, flag)
        if a_open or b_open:
            heard = {"observer": core, "writer": writer} | ({"ws-collector": ws} if b_open else {})
            missing = [name for name, stats in heard.items() if stats is None]
            if missing:
                flag("stats_missing", AMBER, "no stats from " + ", ".join(missing))

        # machine and alert rules
        if writer is not None and writer.disk_error:
            flag("disk_error", RED, "the writer cannot write to disk")
        if inp.disk_usage_pct is not None and inp.disk_usage_pct > pol.disk_max_pct:
            flag("disk_high", RED, f"disk {inp.disk_usage_pct:.1f} % used (> {pol.disk_max_pct:g} %)")
        if inp.cpu_pct is not None:
            self._cpu_alert.feed(at, inp.cpu_pct > pol.cpu_alert_pct, self._max_gap_s)
            self._cpu_anomalous.feed(at, inp.cpu_pct >= pol.anomalous_cpu_pct, self._max_gap_s)
        if self._cpu_alert.held_for(at, self._max_gap_s) >= pol.cpu_alert_s:
            flag("cpu_high", RED, f"CPU > {pol.cpu_alert_pct:g} % for {pol.cpu_alert_s / 60:g} min")
        if a_open and a_rate is not None and a_rate < pol.track_a_min_rate:
            flag("track_a_rate_low", AMBER, f"Track A rate {a_rate:.1%} < {pol.track_a_min_rate:.0%}")
        if b_open and b_rate is not None and b_rate < pol.track_b_min_rate:
            flag("track_b_rate_low", AMBER, f"Track B rate {b_rate:.1%} < {pol.track_b_min_rate:.0%} (5 min)")
        if reconnects is not None and reconnects > pol.reconnects_alert_over:
            flag("ws_reconnects_high", AMBER, f"{reconnects} WS reconnects today")
        if inp.level > 0:
            flag("mitigation", AMBER, f"mitigation level {inp.level}")

        values = self._values(inp, a_rate, b_rate, reconnects, connected, core, writer)
        alerts = [
            AlertState(key, key in reasons, rule.severity, rule.telegram, details.get(key, REASON_TEXT[key]))
            for key, rule in ALERT_RULES.items()
        ]
        report = HealthReport(max(reasons.values(), default=GREEN), reasons, details, values, alerts)
        report.anomalous = self._anomalous(inp, day, b_open, b_rate, reconnects)
        return report

    def _check_silent(self, inp: Inputs, flag: _Flag) -> None:
        core = self.book.latest(CoreStats)
        silent = core.track_b_silent_symbols if core is not None else None
        if silent is None:
            symbols = {a.symbol for a in inp.slots.slots} if inp.slots is not None else None
            silent = self._silent.count(inp.at, symbols)
        if not silent:
            return
        used = core.slots_used if core is not None else None
        if used is None and inp.slots is not None:
            used = len(inp.slots.slots)
        if used:
            threshold = max(1.0, self.cfg.monitor.silent_red_fraction * used)
            severity = RED if silent >= threshold else AMBER
            flag("symbols_silent", severity, f"{silent:.0f} of {used:.0f} slot symbols silent")
        else:
            flag("symbols_silent", RED, f"{silent:.0f} slot symbols silent")

    def _check_swing(self, at: datetime, flag: _Flag) -> None:
        """Red also when the rest-collector is stopped or hung (the core keeps reporting the last
        mark it saw), and when no sweep was seen while this monitor has been up for the grace."""
        core = self.book.latest(CoreStats)
        sweep_at = core.track_a_sweep_at if core is not None else None
        reported = sweep_at.timestamp() if sweep_at is not None else None
        if reported is not None and (self.sweep_mark_s is None or reported > self.sweep_mark_s):
            self.sweep_mark_s = reported
        grace = timedelta(seconds=self.cfg.monitor.swing_sweep_grace_s)
        mark = self.sessions.latest_mark(at - grace)
        if mark is None:
            return
        known = self.sweep_mark_s
        if known is None:
            if self._first_at is not None and at - self._first_at >= grace:
                flag("swing_missing", RED, f"no sweep for the {mark.strftime('%H:%M')} mark (none seen)")
        elif known < mark.timestamp() - 1:
            last = datetime.fromtimestamp(known, KST).strftime("%H:%M")
            flag("swing_missing", RED, f"no sweep for the {mark.strftime('%H:%M')} mark (latest {last})")

    def _values(
        self,
        inp: Inputs,
        a_rate: float | None,
        b_rate: float | None,
        reconnects: int | None,
        connected: bool | None,
        core: CoreStats | None,
        writer: WriterStats | None,
    ) -> HealthValues:
        slots_used = core.slots_used if core is not None else None
        if slots_used is None and inp.slots is not None:
            slots_used = len(inp.slots.slots)
        return HealthValues(
            mitigation_level=inp.level,
            cpu_pct=inp.cpu_pct,
            memory_pct=inp.memory_pct,
            disk_usage_pct=inp.disk_usage_pct,
            disk_latency_ms=writer_latency_ms(writer),
            lag_s=core.event_lag_max_s if core is not None else None,
            track_a_rate=a_rate,
            track_b_rate=b_rate,
            track_b_rate_so_far=self._b_rate_so_far() if b_rate is None else None,
            ws_reconnects_today=reconnects,
            ws_connected=connected,
            slots_used=slots_used,
        )

    def _anomalous(
        self, inp: Inputs, day: DayCounters, b_open: bool, b_rate: float | None, reconnects: int | None
    ) -> list[str] | None:
        if day.anomalous_reported or not self.sessions.is_trading_day(day.day):
            return None
        pol = self.policy
        found = []
        if reconnects is not None and reconnects >= pol.anomalous_reconnects:
            found.append(f"WS reconnects {reconnects} >= {pol.anomalous_reconnects}")
        if day.disconnected_s >= pol.anomalous_disconnected_s:
            found.append(
                f"WS disconnected {day.disconnected_s / 60:.1f} min >= {pol.anomalous_disconnected_s / 60:g}"
            )
        if day.silences >= pol.anomalous_silences:
            found.append(f"{day.silences} log silences >= {pol.anomalous_silences}")
        if b_open and b_rate is not None and b_rate < pol.anomalous_scalp_rate:
            found.append(f"scalp recording rate {b_rate:.1%} < {pol.anomalous_scalp_rate:.0%} for 5 min")
        if self._cpu_anomalous.held_for(inp.at, self._max_gap_s) >= pol.anomalous_cpu_s:
            found.append(f"CPU >= {pol.anomalous_cpu_pct:g} % for {pol.anomalous_cpu_s / 60:g} min")
        if inp.disk_usage_pct is not None and inp.disk_usage_pct > pol.disk_max_pct:
            found.append(f"disk usage {inp.disk_usage_pct:.1f} % > {pol.disk_max_pct:g} %")
        if not found:
            return None
        day.anomalous_reported = True
        return found
