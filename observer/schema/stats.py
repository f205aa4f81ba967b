"""Worker stats: one Struct per worker with fixed fields, published on ``stats.<worker>`` (``WorkerStats``)."""

from __future__ import annotations

from datetime import datetime

from observer.schema.base import _Msg, _Plain

# --------------------------------------------------------------------------- worker stats
# One Struct per worker, fixed fields, published on topic stats.<worker> every few seconds.
# Counters are totals since that worker process started (a lower value than before means it
# restarted); gauges are current values; None means unknown, never zero.


class SlotProgress(_Plain, frozen=True):
    """One occupied slot's scalp windows: due so far today and durably written."""

    slot_number: int
    symbol: str
    expected: int
    written: int


# receive -> fsync latency histogram edges (seconds); CoreStats.lag_buckets has one count per edge
# (records with lag <= edge, not cumulative) plus one for everything slower
LAG_BUCKETS_S: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class CoreStats(_Msg, frozen=True, tag="core_stats"):
    """The core (``stats.observer``)."""

    worker: str
    at: datetime
    # counters
    records: dict[str, int] = {}  # archive lines sent to the writer, by ArchiveKind
    findings: dict[str, int] = {}  # "rejection.<rule>" / "guard.<rule>"
    frames_parse_error: int = 0
    samples_paused: int = 0  # windows not written while the WS feed had failed
    bus_gaps: int = 0
    ingest_accepted: int = 0
    ingest_duplicates: int = 0
    ingest_malformed: int = 0
    late_ticks: int = 0
    archive_resent: int = 0
    archive_abandoned: int = 0
    missed_trade_volume: int = 0
    samples_expected: int = 0  # scalp windows due (Track B rate = delta written / delta expected)
    samples_written: int = 0  # scalp samples the writer made durable
    gap_markers: dict[str, int] = {}  # gap markers archived, by "<track>/<reason>"
    lag_buckets: list[int] = []  # receive -> durable per record, by LAG_BUCKETS_S (+ one overflow)
    lag_sum_s: float = 0.0
    # gauges
    mitigation_level: int = 0
    slots_used: int | None = None
    archive_unacked: int = 0
    ingest_pending: int = 0
    ingest_held_by_windows: int = 0
    universe_size: int = 0
    track_a_collection_rate: float | None = None  # symbols recorded / universe of the last whole sweep
    track_b_collection_rate: float | None = None
    event_lag_mean_s: float | None = None  # receive -> durable, since the previous stats
    event_lag_max_s: float | None = None
    slots: list[SlotProgress] = []
    # optional figures the monitor uses when present (the core does not compute them yet)
    track_a_sweep_recorded: int | None = None
    track_a_sweep_universe: int | None = None
    track_a_sweep_at: datetime | None = None  # the latest sweep's scheduled mark
    track_b_oldest_sample_age_s: float | None = None
    track_b_silent_symbols: int | None = None
    track_a_open: bool | None = None
    track_b_open: bool | None = None


class WriterStats(_Msg, frozen=True, tag="writer_stats"):
    """The partition writer (``stats.writer``)."""

    worker: str
    at: datetime
    # counters
    written: dict[str, int] = {}  # lines made durable, by ArchiveKind
    duplicates_skipped: int = 0
    rejected: int = 0
    gaps: int = 0
    commits: int = 0
    disk_errors: int = 0
    torn_lines_repaired: int = 0
    intake_pauses: int = 0
    malformed_envelopes: int = 0
    stream_sent: int = 0  # lines sent on the outbound stream (when configured)
    stream_abandoned: int = 0
    # gauges
    fsync_last_ms: float | None = None
    fsync_p99_ms: float | None = None  # write+fsync latency, p99 of the recent commits
    lag_p99_ms: float | None = None
    queue_bytes: int = 0
    queue_records: int = 0
    disk_error: bool = False  # the disk refuses writes
    intake_paused: bool = False
    mitigation_level: int = 0
    index_ready: bool = False
    index_ids: int = 0


class WsCollectorStats(_Msg, frozen=True, tag="ws_collector_stats"):
    """The WebSocket collector (``stats.ws-collector``)."""

    worker: str
    at: datetime
    # counters
    frames: int = 0
    ticks: int = 0
    rejected: int = 0
    reconnects: int = 0
    sessions_opened: int = 0
    session_failures: int = 0
    dropped_frames: int = 0
    overflow_gaps: int = 0
    outage_gaps: int = 0
    acks: int = 0
    ack_events: int = 0
    pingpongs: int = 0
    invalid_control: int = 0
    slot_commands: int = 0
    silent_reports: int = 0
    session_in_use: int = 0
    session_dropped_frames: int = 0
    ingest_resent: int = 0
    ingest_resend_rounds: int = 0
    ingest_abandoned: int = 0
    # gauges
    connected: bool = False
    subscribed: int = 0
    held: int = 0
    desired: int = 0
    peak_registrations: int = 0
    last_frame_age_s: float | None = None  # None: no data frame yet
    in_session: bool = False
    failing_s: float = 0.0
    unacked: int = 0
    sessions: int = 1  # WebSocket sessions, one per app key
    sessions_up: int = 0
    keys_failed: int = 0  # keys whose symbols were moved to the others


class HealthValues(_Plain, frozen=True):
    """The figures behind the monitor's health status (None: unknown)."""

    mitigation_level: int = 0
    cpu_pct: float | None = None
    memory_pct: float | None = None
    disk_usage_pct: float | None = None
    disk_latency_ms: float | None = None
    lag_s: float | None = None
    track_a_rate: float | None = None
    track_b_rate: float | None = None
    track_b_rate_so_far: float | None = None
    ws_reconnects_today: int | None = None
    ws_connected: bool | None = None
    slots_used: int | None = None


class PeerSeen(_Plain, frozen=True):
    """A worker the monitor hears on the bus (its heartbeats), whichever host's supervisor runs it."""

    pid: int
    age_s: float  # since its last heartbeat, when the monitor published this


class MonitorStats(_Msg, frozen=True, tag="monitor_stats"):
    """The monitor (``stats.monitor``): health status, its reasons and figures, alert counts."""

    worker: str
    at: datetime
    # gauges
    health: int | None = None  # 0 green, 1 amber, 2 red; None before the first sample
    reasons: dict[str, int] = {}  # active health reason -> 1 amber / 2 red
    values: HealthValues = HealthValues()
    mitigation_level: int = 0
    peers: dict[str, PeerSeen] = {}  # every worker heard, by name: the remote host's too (split hosts)
    # counters
    samples: int = 0
    level_changes: int = 0
    events_sent: int = 0
    metrics_sent: int = 0
    malformed_events: int = 0
    gaps: int = 0
    alert_episodes: int = 0
    alerts_sent: int = 0
    alerts_failed_attempts: int = 0
    alerts_refused: int = 0
    alerts_dropped: int = 0


class JetStreamStats(_Msg, frozen=True, tag="jetstream_stats"):
    """The NATS JetStream publisher (``stats.jetstream``)."""

    worker: str
    at: datetime
    # counters
    published: int = 0
    duplicates: int = 0
    retries: int = 0
    gaps: int = 0
    hop_duplicates: int = 0
    # gauges
    queue_batches: int = 0
    connected: bool = False


WorkerStats = CoreStats | WriterStats | WsCollectorStats | MonitorStats | JetStreamStats
