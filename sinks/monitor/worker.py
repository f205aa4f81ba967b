"""The monitor worker: samples the machine, listens to the other workers, and turns both into the
mitigation level, the health status, alerts and the 5-minute metrics line.

Timing: market-time intervals (``sample_interval_s``, ``sustain_s``, ``clear_s``,
``metrics_interval_s``) follow the injected clock, so a fast `SessionClock` runs them faster; bus
liveness intervals (``level_republish_s``, ``health_publish_s``, heartbeat silences) are real
seconds.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from datetime import datetime, timedelta
from typing import Any

import psutil

from observer import record_ids
from observer.bus import (
    ALERT,
    HEARTBEAT,
    MITIGATION,
    SLOTS,
    STATS,
    SUPERVISOR,
    SYSTEM,
    EventSubscriber,
    stats_topic,
)
from observer.clock import KST, Clock
from observer.config import Config, Secrets, data_dir, state_dir
from observer.gap_markers import seq_gap
from observer.reliable import ReliableSender, SeqGap, hop_endpoints
from observer.schema import (
    CoreStats,
    DayAnomalous,
    GapMarker,
    HealthValues,
    Heartbeat,
    JetStreamStats,
    MetricsSnapshot,
    MitigationLevel,
    MonitorStats,
    PeerSeen,
    Severity,
    SlotCommand,
    SystemEvent,
    WorkerStats,
    WriterStats,
    WsCollectorStats,
)
from observer.sessions import MarketSessions
from observer.worker_base import Worker
from sinks.monitor import memory
from sinks.monitor.alerts import AlertSender
from sinks.monitor.day_summary import DaySummary
from sinks.monitor.health import HealthReport, HealthRules, Inputs, writer_latency_ms
from sinks.monitor.metrics import MetricsWindow, disk_usage_pct
from sinks.monitor.mitigation import LevelChange, MitigationState, SignalSample
from sinks.monitor.prometheus import ExporterState, MetricsServer, serve_metrics
from sinks.monitor.stats import StatsBook

TOPICS = [STATS, HEARTBEAT, SLOTS, ALERT, SUPERVISOR, SYSTEM]
_REPLAY_BYTES = 8 * 1024 * 1024
_SEEN_EVENTS = 1_000
_DRAIN_MAX = 2_000


class MonitorWorker(Worker):
    name = "monitor"
    tick_interval_s = 0.1

    def __init__(self, cfg: Config, *, clock: Clock | None = None, secrets: Secrets | None = None):
        super().__init__(cfg, clock=clock, secrets=secrets)
        mon = cfg.monitor
        self.book = StatsBook(mon.stats_stale_s)
        self.mitigation = MitigationState.from_config(mon)
        self.sessions = MarketSessions.from_config(cfg)
        self.rules = HealthRules(cfg, self.book, self.sessions)
        self.metrics = MetricsWindow(cfg, self.book)
        self.slots: SlotCommand | None = None
        self.report: HealthReport | None = None
        self.sub: EventSubscriber | None = None
        self.sender: ReliableSender | None = None
        self.alerts: AlertSender | None = None
        self.day_summary: DaySummary | None = None
        self._next_sample_at: datetime | None = None
        self._level_published_at = 0.0
        self._health_published_at = 0.0
        self._heartbeat_at: dict[str, float] = {}
        self._heartbeat_pid: dict[str, int] = {}
        self._silent: set[str] = set()
        self._seen_events: OrderedDict[str, None] = OrderedDict()
        self._data_dir = data_dir(cfg)
        self._memory_path = state_dir(cfg) / "monitor.json"
        self.samples = 0
        self.level_changes = 0
        self.events_sent = 0
        self.metrics_sent = 0
        self.gaps = 0
        self._event_ids = record_ids.EventIds(self.name, self.run_id)
        self._gaps_waiting: list[SeqGap] = []
        self.exporter = ExporterState(cfg)
        self.metrics_server: MetricsServer | None = None

    # -- lifecycle
    def on_start(self) -> None:
        assert self.ctx is not None
        self.sub = EventSubscriber(self.ctx, self.cfg, TOPICS)
        self.register(self.sub.sock, self.handle_events)
        ingest, ingest_ack = hop_endpoints(self.cfg, "ingest")
        self.sender = ReliableSender(
            self.ctx,
            self.cfg,
            self.name,
            ingest,
            ingest_ack,
            run_id=self.run_id,
            on_gap=self._on_gap,
            replay_buffer_bytes=_REPLAY_BYTES,
        )
        self.register(self.sender.ack_sub, self.sender.handle_acks)
        self.alerts = AlertSender(self.cfg, self.secrets, source=self.name)
        self.alerts.start()
        self.day_summary = DaySummary(self.cfg, self.sessions, self.alerts, self.log)
        self.metrics_server = serve_metrics(self.exporter, self.cfg.monitor.metrics_listen)
        psutil.cpu_percent(None)  # primes the system-wide counter: the next call covers one interval
        now = self.clock.now()
        self.metrics.begin(now)
        self._next_sample_at = now
        remembered = memory.resume(self._memory_path, now, self.mitigation, self.rules, self.alerts)
        if remembered is not None:
            self.log.info("resumed today's state", extra={"level": remembered.level})
        self._publish_level(now)

    def on_tick(self) -> None:
        assert self.sender is not None
        while self._gaps_waiting:
            gap = self._gaps_waiting.pop(0)
            self._send(
                seq_gap(gap, provider=self.cfg.archive_provider, detected_by=self.name, at=self.clock.now())
            )
        self.sender.pump()
        now = self.clock.now()
        if self._next_sample_at is not None and now >= self._next_sample_at:
            self._next_sample_at = now + timedelta(seconds=self.cfg.monitor.sample_interval_s)
            self.sample(now)
        real = time.monotonic()
        if real - self._level_published_at >= self.cfg.monitor.level_republish_s:
            self._publish_level(now)
        if real - self._health_published_at >= self.cfg.monitor.health_publish_s:
            self._publish_health(now)

    def on_stop(self) -> None:
        if self.metrics_server is not None:
            self.metrics_server.stop()
        if self.alerts is not None:
            self.alerts.stop(1.0)
        if self.sender is not None:
            if not self.sender.wait_all_acked(1.0):
                self.log.warning(
                    "monitor events not acknowledged at stop", extra={"unacked": self.sender.unacked}
                )
            self.sender.close()
        if self.sub is not None:
            self.sub.close()

    def stats(self) -> dict[str, float]:
        out = {"level": float(self.mitigation.level), "samples": float(self.samples)}
        if self.report is not None:
            out["health"] = float(self.report.status)
        if self.sender is not None:
            out["unacked"] = float(self.sender.unacked)
        return out

    # -- inbound events
    def handle_events(self) -> None:
        assert self.sub is not None
        for _ in range(_DRAIN_MAX):
            item = self.sub.recv_nowait()
            if item is None:
                return
            topic, body = item
            match body:
                case CoreStats() | WriterStats() | WsCollectorStats() | MonitorStats() | JetStreamStats():
                    self.handle_stats(body)
                case Heartbeat():
                    self.handle_heartbeat(body)
                case SlotCommand():
                    self.slots = body
                case SystemEvent():
                    self.handle_system_event(topic, body)
                case _:
                    pass

    def handle_stats(self, stats: WorkerStats) -> None:
        if isinstance(stats, MonitorStats):
            return
        self.book.feed(stats)
        self.exporter.worker_stats(stats, self.mitigation.level)
        if isinstance(stats, CoreStats) and stats.event_lag_max_s is not None:
            self.metrics.add_lag(stats.event_lag_max_s)

    def handle_heartbeat(self, hb: Heartbeat) -> None:
        if hb.worker != self.name:
            self._heartbeat_at[hb.worker] = time.monotonic()
            self._heartbeat_pid[hb.worker] = hb.pid
            self._silent.discard(hb.worker)

    def handle_system_event(self, topic: str, event: SystemEvent) -> None:
        """Alerts raised by other workers: everything on ``alert.*``, CRITICAL anywhere else
        (``supervisor.*``, ``system.*``); ``symbol_silent`` reports feed the freshness rules."""
        if event.type == "symbol_silent" and isinstance(event.details.get("symbol"), str):
            self.rules.note_silent_symbol(str(event.details["symbol"]), self.clock.now())
        if not (topic.startswith(ALERT) or event.severity == "CRITICAL"):
            return
        if event.record_id in self._seen_events:
            return
        self._seen_events[event.record_id] = None
        while len(self._seen_events) > _SEEN_EVENTS:
            self._seen_events.popitem(last=False)
        assert self.alerts is not None
        text = f"{event.source}: {event.message or event.type}"
        telegram = event.severity in ("WARNING", "ERROR", "CRITICAL")
        self.alerts.notify(f"event.{event.type}", event.severity, text, telegram=telegram)

    # -- the sample
    def sample(self, now: datetime) -> None:
        self.samples += 1
        cpu = float(psutil.cpu_percent(None))
        memory_pct = float(psutil.virtual_memory().percent)
        disk = disk_usage_pct(self._data_dir)
        signal = SignalSample(
            at=now,
            cpu_pct=cpu,
            memory_pct=memory_pct,
            disk_latency_ms=writer_latency_ms(self.book.latest(WriterStats)),
            lag_s=core.event_lag_max_s if (core := self.book.latest(CoreStats)) is not None else None,
        )
        change = self.mitigation.observe(signal)
        if change is not None:
            self._level_changed(change)
        self.metrics.add_sample(cpu, memory_pct, disk)
        if self.day_summary is not None:
            self.day_summary.poll(now)
        self._check_silences(now)
        previous = self.report
        report = self.rules.evaluate(Inputs(now, cpu, memory_pct, disk, self.mitigation.level, self.slots))
        self.report = report
        assert self.alerts is not None
        for alert in report.alerts:
            self.alerts.set_condition(
                alert.key, alert.active, alert.severity, alert.text, telegram=alert.telegram
            )
        if previous is None or previous.status != report.status:
            self._health_changed(previous, report)
        if report.anomalous:
            self._day_anomalous(now, report.anomalous)
        if self.metrics.due(now):
            self._send(self._metrics(now))
        memory.remember(self._memory_path, now, self.mitigation, self.rules, self.alerts)

    def _check_silences(self, now: datetime) -> None:
        real = time.monotonic()
        for worker, at in self._heartbeat_at.items():
            if worker not in self._silent and real - at >= self.cfg.monitor.heartbeat_silence_s:
                self._silent.add(worker)
                self.rules.note_silence(now)
                self.log.warning("worker silent", extra={"worker": worker, "silent_s": round(real - at, 1)})

    def _metrics(self, now: datetime) -> MetricsSnapshot:
        used = len(self.slots.slots) if self.slots is not None else 0
        core = self.book.latest(CoreStats)
        used_gauge = core.slots_used if core is not None else None
        self.metrics_sent += 1
        return self.metrics.build(
            now,
            track_a_rate=self.rules.track_a_rate(),
            reconnects_today=self.rules.reconnects_today(),
            slots_used=int(used_gauge) if used_gauge is not None else used,
            level=self.mitigation.level,
        )

    # -- outbound
    def _level_changed(self, change: LevelChange) -> None:
        self.level_changes += 1
        severity: Severity = "WARNING" if change.new > change.old else "INFO"
        message = f"mitigation level {change.old} -> {change.new}"
        self.log.warning(message, extra={"reasons": change.reasons})
        self._publish_level(change.at, change.reasons)
        self._send(
            self._event(
                "mitigation_change",
                severity,
                change.at,
                message,
                old=change.old,
                new=change.new,
                reasons=change.reasons,
            )
        )

    def _health_changed(self, previous: HealthReport | None, report: HealthReport) -> None:
        old = previous.status_name if previous is not None else "unknown"
        reasons = [f"{k}: {v}" for k, v in report.details.items()]
        severity: Severity = {0: "INFO", 1: "WARNING", 2: "ERROR"}[report.status]  # type: ignore[assignment]
        message = f"health {old} -> {report.status_name}"
        self.log.log(30 if report.status else 20, message, extra={"reasons": reasons})
        now = self.clock.now()
        self._send(
            self._event(
                "health_change",
                severity,
                now,
                message,
                old=old,
                new=report.status_name,
                reasons=reasons,
            )
        )

    def _day_anomalous(self, now: datetime, reasons: list[str]) -> None:
        day = now.astimezone(KST).date()
        self.log.warning("day marked anomalous", extra={"day": day.isoformat(), "reasons": reasons})
        provider = self.cfg.archive_provider
        self._send(
            DayAnomalous(
                record_id=record_ids.event(self.name, "day_anomalous", provider, f"{day:%Y%m%d}"),
                at=now,
                source=self.name,
                provider=provider,
                day=day,
                severity="WARNING",
                reasons=reasons,
            )
        )

    def _event(
        self, type_: str, severity: Severity, at: datetime, message: str, **details: Any
    ) -> SystemEvent:
        return SystemEvent(
            record_id=self._event_ids.next(),
            type=type_,
            severity=severity,
            at=at,
            source=self.name,
            provider=self.cfg.archive_provider,
            message=message,
            details=details,
        )

    def _send(self, body: SystemEvent | DayAnomalous | GapMarker | MetricsSnapshot) -> None:
        assert self.sender is not None
        self.sender.send(body)
        if isinstance(body, SystemEvent | DayAnomalous):
            self.events_sent += 1

    def _publish_level(self, now: datetime, reasons: list[str] | None = None) -> None:
        assert self.events is not None
        self._level_published_at = time.monotonic()
        level = MitigationLevel(
            level=self.mitigation.level,
            at=now,
            reasons=reasons if reasons is not None else self.mitigation.reasons_now(),
        )
        self.events.publish(MITIGATION, level)

    def _publish_health(self, now: datetime) -> None:
        assert self.events is not None
        self._health_published_at = time.monotonic()
        report, alerts = self.report, self.alerts
        real = time.monotonic()
        stats = MonitorStats(
            worker=self.name,
            at=now,
            health=report.status if report is not None else None,
            reasons=dict(report.reasons) if report is not None else {},
            values=report.values if report is not None else HealthValues(),
            mitigation_level=self.mitigation.level,
            peers={
                worker: PeerSeen(pid=self._heartbeat_pid.get(worker, 0), age_s=round(real - at, 3))
                for worker, at in self._heartbeat_at.items()
            },
            samples=self.samples,
            level_changes=self.level_changes,
            events_sent=self.events_sent,
            metrics_sent=self.metrics_sent,
            malformed_events=self.sub.malformed if self.sub is not None else 0,
            gaps=self.gaps,
            alert_episodes=alerts.episodes if alerts is not None else 0,
            alerts_sent=alerts.sent if alerts is not None else 0,
            alerts_failed_attempts=alerts.attempts_failed if alerts is not None else 0,
            alerts_refused=alerts.refused if alerts is not None else 0,
            alerts_dropped=alerts.dropped if alerts is not None else 0,
        )
        self.events.publish(stats_topic(self.name), stats)
        self.exporter.update(monitor=stats)

    def _on_gap(self, gap: SeqGap) -> None:
        """Called from inside sender.send: its marker is sent from on_tick, never re-entrantly."""
        self.gaps += 1
        self._gaps_waiting.append(gap)
        self.log.error(
            "monitor events abandoned (replay buffer overflow)",
            extra={"first": gap.first, "last": gap.last, "pid": os.getpid()},
        )
