"""Prometheus ``/metrics``: the monitor's view of the pipeline in the ecosystem's terms.

Data flow::

    monitor poll loop (main thread)                      HTTP scrape (prometheus_client's thread)
      typed stats (CoreStats, WriterStats,                  ExporterState.collect()
      WsCollectorStats, MonitorStats)                  -->    reads one immutable `Snapshot`,
      -> `ExporterState.update(...)` swaps the Snapshot       asks the supervisor for worker states
                                                              and restarts (control socket) and
                                                              reads the standing alarms (files)

The main thread never waits for a scrape and a scrape never touches the monitor's objects: the
poll loop replaces one reference (atomic in CPython) and the collector reads whatever it finds.

Conventions: every name starts ``krx_observer_``, units in names (``_seconds``, ``_ratio``,
``_bytes``), counters end in ``_total`` and are the producers' own cumulative counts (a producer
restart resets them, which PromQL's ``rate``/``increase`` handle). Labels are bounded sets —
worker names, tracks, archive kinds, rejection rules, gap causes — never a symbol.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import start_http_server

from observer.alarms import standing
from observer.config import Config, track_b_capacity
from observer.control import ControlClient, NoSupervisor, reply_data
from observer.schema import (
    LAG_BUCKETS_S,
    Command,
    CoreStats,
    MonitorStats,
    WorkerStats,
    WriterStats,
    WsCollectorStats,
)
from sinks.monitor.health import SAMPLE_WINDOW_S

log = logging.getLogger(__name__)

PREFIX = "krx_observer_"
# name -> (type, help); the rules, the dashboard and the tests are checked against this table
METRICS: dict[str, tuple[str, str]] = {
    "supervisor_up": ("gauge", "1 when the supervisor answered the monitor's status request"),
    "worker_up": ("gauge", "1 when the supervisor reports the worker RUNNING"),
    "worker_state": ("gauge", "1 for the worker's current supervisor state"),
    "worker_restarts_total": ("counter", "automatic restarts of the worker since its last operator start"),
    "records_routed_total": ("counter", "archive lines the core sent to the writer, by kind"),
    "records_archived_total": ("counter", "archive lines the writer made durable (fsynced), by kind"),
    "records_rejected_total": ("counter", "records rejected before the archive, by worker and reason"),
    "ingest_messages_total": ("counter", "messages the core received on the ingest hop, by outcome"),
    "gap_markers_total": ("counter", "gap markers the core archived, by track and cause"),
    "receive_to_fsync_seconds": ("histogram", "local receive time -> writer fsync acknowledged, per record"),
    "slots_used": ("gauge", "Track B slots in use"),
    "slots_capacity": ("gauge", "Track B slots available (41 per WebSocket session)"),
    "ws_connected": ("gauge", "1 while the WebSocket session is up"),
    "ws_sessions_opened_total": ("counter", "WebSocket sessions opened"),
    "ws_reconnects_total": ("counter", "WebSocket reconnects of the collector's current run"),
    "ws_reconnects_today": ("gauge", "WebSocket reconnects during the current KST day"),
    "track_a_coverage_ratio": ("gauge", "symbols recorded / universe of the latest whole Track A sweep"),
    "track_b_collection_ratio": ("gauge", "scalp samples recorded / expected over the last 5 minutes"),
    "session_open": ("gauge", "1 while the track's trading session is open (calendar and hours)"),
    "data_age_seconds": ("gauge", "age of the newest data per track (swing: latest sweep mark)"),
    "data_stale_after_seconds": ("gauge", "data older than this during a session is stale (alert)"),
    "mitigation_level": ("gauge", "mitigation level: 0 = 2 Hz, 1 = 1 Hz, 2 = 0.5 Hz"),
    "health_status": ("gauge", "0 green, 1 amber, 2 red"),
    "health_reason": ("gauge", "active health reasons: 1 amber, 2 red"),
    "cpu_usage_ratio": ("gauge", "host CPU usage"),
    "memory_usage_ratio": ("gauge", "host memory usage"),
    "disk_usage_ratio": ("gauge", "usage of the filesystem holding the archive"),
    "disk_write_latency_seconds": ("gauge", "worst write+fsync latency of the writer's recent commits"),
    "writer_queue_records": ("gauge", "records waiting in the writer's queue"),
    "backup_failed": ("gauge", "1 while a backup_failed alarm stands (observer.alarms)"),
    "backup_unverified_days": ("gauge", "days past the verification deadline without a verified pull"),
    "retention_blocked_days": ("gauge", "standing retention_blocked alarms (days, or the disk)"),
    "stats_age_seconds": ("gauge", "age of the latest stats message from each worker"),
}
METRIC_NAMES = frozenset(PREFIX + name for name in METRICS)
WORKER_STATES = ("STOPPED", "STARTING", "RUNNING", "BACKOFF", "STOPPING", "EXITED", "FATAL")
TRACKS = ("swing", "scalp", "raw")


@dataclass(frozen=True)
class Snapshot:
    """Everything a scrape reports apart from the supervisor's live answer."""

    at: float = field(default_factory=time.time)  # wall-clock seconds
    core: CoreStats | None = None
    writer: WriterStats | None = None
    ws: WsCollectorStats | None = None
    monitor: MonitorStats | None = None
    stats_at: dict[str, float] = field(default_factory=dict)  # worker -> wall time received
    slots_capacity: int = 41
    data_age_s: dict[str, float] = field(default_factory=dict)
    stale_after_s: dict[str, float] = field(default_factory=dict)


def _family(name: str, labels: list[str], rows: Iterable[tuple[list[str], float]]) -> Metric:
    """One metric family of the `METRICS` table (its type and help), with a sample per row."""
    kind, help_text = METRICS[name]
    make = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
    fam = make(PREFIX + name.removesuffix("_total"), help_text, labels=labels)
    for values, value in rows:
        fam.add_metric(values, float(value))
    return fam


def _gauge(name: str, value: float | None, labels: dict[str, str] | None = None) -> Iterator[Metric]:
    if value is not None:
        yield _family(name, list(labels or {}), [(list((labels or {}).values()), value)])


class ExporterState:
    """The collector registered with prometheus_client; `update` is called from the poll loop."""

    def __init__(self, cfg: Config, *, ask_supervisor: bool = True):
        self.cfg = cfg
        self.snapshot = Snapshot(slots_capacity=track_b_capacity(cfg))
        self._ask_supervisor = ask_supervisor
        self.scrapes = 0

    def update(self, **changes: object) -> None:
        self.snapshot = replace(self.snapshot, at=time.time(), **changes)  # type: ignore[arg-type]

    def worker_stats(self, stats: WorkerStats, level: int) -> None:
        """Hand a worker's stats to /metrics, with each track's data age and staleness threshold."""
        snap = self.snapshot
        stats_at = {**snap.stats_at, stats.worker: time.time()}
        ages, stale_after = dict(snap.data_age_s), dict(snap.stale_after_s)
        mon = self.cfg.monitor
        match stats:
            case CoreStats():
                if stats.track_b_oldest_sample_age_s is not None:
                    ages["scalp"] = stats.track_b_oldest_sample_age_s
                    window_s = SAMPLE_WINDOW_S.get(level, 0.5)
                    stale_after["scalp"] = mon.scalp_stale_windows * window_s
                if stats.track_a_sweep_at is not None:
                    ages["swing"] = max(0.0, (stats.at - stats.track_a_sweep_at).total_seconds())
                    stale_after["swing"] = self.cfg.track_a.sweep_interval_min * 60 + mon.swing_sweep_grace_s
                self.update(core=stats, stats_at=stats_at, data_age_s=ages, stale_after_s=stale_after)
            case WriterStats():
                self.update(writer=stats, stats_at=stats_at)
            case WsCollectorStats():
                if stats.last_frame_age_s is not None:
                    ages["raw"] = stats.last_frame_age_s
                    stale_after["raw"] = self.cfg.track_b.receive_watchdog_s
                self.update(ws=stats, stats_at=stats_at, data_age_s=ages, stale_after_s=stale_after)

    # -- prometheus_client calls this from its HTTP thread
    def collect(self) -> Iterable[Metric]:
        self.scrapes += 1
        snap = self.snapshot
        yield from self._workers()
        yield from self._core(snap)
        yield from self._writer(snap)
        yield from self._ws(snap)
        yield from self._monitor(snap)
        yield from self._freshness(snap)
        yield from self._alarms()
        now = time.time()
        ages = [([worker], max(0.0, now - at)) for worker, at in sorted(snap.stats_at.items())]
        yield _family("stats_age_seconds", ["worker"], ages)

    def _workers(self) -> Iterator[Metric]:
        if not self._ask_supervisor:
            return
        try:
            reply = ControlClient(self.cfg, timeout_s=0.5, tries=1).request(Command(action="status"))
            data = reply_data(reply) if reply.ok else None
        except (NoSupervisor, ValueError) as e:
            log.debug("supervisor status for /metrics failed: %s", e)
            data = None
        yield from _gauge("supervisor_up", 0 if data is None else 1)
        if data is None:
            return
        workers = [
            (str(w.get("name")), str(w.get("state")), w.get("restarts") or 0)
            for w in data.get("workers") or []
        ]
        yield _family("worker_up", ["worker"], [([n], s == "RUNNING") for n, s, _ in workers])
        yield _family(
            "worker_state",
            ["worker", "state"],
            [([n, s], s == cur) for n, cur, _ in workers for s in WORKER_STATES],
        )
        yield _family("worker_restarts_total", ["worker"], [([n], r) for n, _, r in workers])

    def _core(self, snap: Snapshot) -> Iterator[Metric]:
        core = snap.core
        if core is None:
            return
        yield _family("records_routed_total", ["kind"], [([k], n) for k, n in sorted(core.records.items())])
        rejected: list[tuple[list[str], float]] = [
            (["observer", key.removeprefix("rejection.")], n)
            for key, n in sorted(core.findings.items())
            if key.startswith("rejection.")
        ]
        rejected.append((["observer", "parse_error"], core.frames_parse_error))
        if snap.writer is not None:
            rejected.append((["writer", "invalid"], snap.writer.rejected))
        if snap.ws is not None:
            rejected.append((["ws-collector", "invalid"], snap.ws.rejected))
        yield _family("records_rejected_total", ["worker", "reason"], rejected)
        outcomes = [
            (["accepted"], core.ingest_accepted),
            (["duplicate"], core.ingest_duplicates),
            (["malformed"], core.ingest_malformed),
        ]
        yield _family("ingest_messages_total", ["outcome"], outcomes)
        gaps = [
            (key.split("/", 1) if "/" in key else [key, ""], n) for key, n in sorted(core.gap_markers.items())
        ]
        yield _family("gap_markers_total", ["track", "cause"], gaps)
        if core.lag_buckets:
            cumulative, buckets = 0, []
            for edge, n in zip((*LAG_BUCKETS_S, float("inf")), core.lag_buckets, strict=False):
                cumulative += n
                buckets.append(("+Inf" if edge == float("inf") else f"{edge:g}", cumulative))
            hist = HistogramMetricFamily(
                PREFIX + "receive_to_fsync_seconds", METRICS["receive_to_fsync_seconds"][1]
            )
            hist.add_metric([], buckets, core.lag_sum_s)
            yield hist
        yield from _gauge("slots_used", core.slots_used)
        yield from _gauge("slots_capacity", snap.slots_capacity)
        yield from _gauge("track_a_coverage_ratio", core.track_a_collection_rate)
        for track, is_open in (("swing", core.track_a_open), ("scalp", core.track_b_open)):
            if is_open is not None:
                yield from _gauge("session_open", 1 if is_open else 0, {"track": track})

    def _writer(self, snap: Snapshot) -> Iterator[Metric]:
        writer = snap.writer
        if writer is None:
            return
        yield _family(
            "records_archived_total", ["kind"], [([k], n) for k, n in sorted(writer.written.items())]
        )
        yield from _gauge("writer_queue_records", writer.queue_records)
        if writer.fsync_p99_ms is not None:
            yield from _gauge("disk_write_latency_seconds", writer.fsync_p99_ms / 1000)

    def _ws(self, snap: Snapshot) -> Iterator[Metric]:
        ws = snap.ws
        if ws is None:
            return
        yield from _gauge("ws_connected", 1 if ws.connected else 0)
        yield _family("ws_sessions_opened_total", [], [([], ws.sessions_opened)])
        yield _family("ws_reconnects_total", [], [([], ws.reconnects)])

    def _monitor(self, snap: Snapshot) -> Iterator[Metric]:
        mon = snap.monitor
        if mon is None:
            return
        v = mon.values
        yield from _gauge("health_status", mon.health)
        yield _family("health_reason", ["reason"], [([r], level) for r, level in sorted(mon.reasons.items())])
        yield from _gauge("mitigation_level", mon.mitigation_level)
        yield from _gauge("track_b_collection_ratio", v.track_b_rate)
        yield from _gauge("ws_reconnects_today", v.ws_reconnects_today)
        for name, pct in (("cpu", v.cpu_pct), ("memory", v.memory_pct), ("disk", v.disk_usage_pct)):
            yield from _gauge(f"{name}_usage_ratio", None if pct is None else pct / 100)

    def _freshness(self, snap: Snapshot) -> Iterator[Metric]:
        for name, values in (
            ("data_age_seconds", snap.data_age_s),
            ("data_stale_after_seconds", snap.stale_after_s),
        ):
            if values:
                yield _family(name, ["track"], [([track], v) for track, v in sorted(values.items())])

    def _alarms(self) -> Iterator[Metric]:
        """Backup and retention state from the standing alarms (``observer.alarms``, files on disk)."""
        try:
            kinds = [a.kind for a in standing(self.cfg)]
        except OSError as e:
            log.warning("cannot read the alarms for /metrics: %s", e)
            return
        yield from _gauge("backup_failed", 1 if "backup_failed" in kinds else 0)
        yield from _gauge("backup_unverified_days", kinds.count("backup_unverified"))
        yield from _gauge("retention_blocked_days", kinds.count("retention_blocked"))


class MetricsServer:
    """Serves `ExporterState` on ``[monitor] metrics_listen`` from a daemon thread."""

    def __init__(self, state: ExporterState, listen: str):
        host, _, port = listen.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"[monitor] metrics_listen must be host:port, got {listen!r}")
        self.host, self.port = host.strip("[]"), int(port)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(state)  # type: ignore[arg-type]
        self._server: object | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        server, thread = start_http_server(self.port, addr=self.host, registry=self.registry)
        self._server, self._thread = server, thread
        log.info("metrics on http://%s:%d/metrics", self.host, self.port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()  # type: ignore[attr-defined]
            self._server.server_close()  # type: ignore[attr-defined]
            self._server = None


def serve_metrics(exporter: ExporterState, listen: str) -> MetricsServer | None:
    """/metrics is for operators: a port in use is logged loudly, and recording goes on (None)."""
    if not listen:
        return None
    try:
        server = MetricsServer(exporter, listen)
        server.start()
    except (OSError, ValueError) as e:
        log.error("cannot serve /metrics", extra={"listen": listen, "error": str(e)})
        return None
    return server
