"""Every message that crosses a process boundary, and every archive line.

All are frozen msgspec Structs tagged by ``kind``. Bus bodies are grouped into one union per
receiving role:

* ``IngestBody``  — what collectors (and any worker that wants something archived) push to the core;
* ``ArchiveBody`` — what the core pushes to the writer;
* ``EventBody``   — what travels on the PUB/SUB event bus (heartbeats, acks, levels, slots, stats);
  the topic each travels on is named in ``observer.bus`` (the topic table);
* ``FeedBody``    — what the public ``feed`` (and its replay twin) publishes: every archived line.

What one process tells another is a Struct here, never a string to compare: the WS feed's state is a
``FeedStatus``, a new universe a ``UniverseBuilt``, an anomalous day a ``DayAnomalous``, a finished
Track A sweep a ``SweepSummary``; each is
archived as the ``SystemEvent`` its ``event()`` returns. Worker stats are one Struct per worker
(``CoreStats``, ``WriterStats``, ``WsCollectorStats``, ``MonitorStats``) with fixed fields.

Every reliable message travels inside an ``Envelope`` (producer, run id, seq, floor, send time);
on the wire consecutive envelopes of one producer share an ``EnvelopeBatch``.
Archive lines (``PatternRecord``, ``SystemEvent``, ``GapMarker``, ``OverflowEntry``, ``RawFrameRecord``,
``MetricsSnapshot``) carry a deterministic ``record_id``.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Generic, Literal, TypeVar

import msgspec

SCHEMA_VERSION = "1.0"

Track = Literal["swing", "scalp"]
QualityFlag = Literal["normal", "degraded", "gap"]
Severity = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
ArchiveKind = Literal["swing", "scalp", "raw", "system", "overflow", "metrics"]
DetailValue = str | int | float | bool | None | list[str]


class _Msg(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", omit_defaults=False):
    pass


class _Plain(msgspec.Struct, frozen=True, kw_only=True):
    pass


# --------------------------------------------------------------------------- market data (ingest)


class Tick(_Plain, frozen=True):
    """One real-time trade (KIS H0STCNT0 record), normalised at the collector edge."""

    symbol: str
    exchange_at: datetime  # BSOP_DATE + STCK_CNTG_HOUR, KST
    received_at: datetime  # local receive time of the frame that carried it
    price: int
    change: int  # price - previous close
    open: int
    high: int
    low: int
    trade_volume: int  # CNTG_VOL
    cumulative_volume: int  # ACML_VOL
    cumulative_value: int  # ACML_TR_PBMN, KRW
    ask_price: int
    bid_price: int
    ask_size: int = 0
    bid_size: int = 0
    side: Literal["buy", "sell", "none"] = "none"
    halted: bool = False
    session_code: str = ""  # NEW_MKOP_CLS_CODE
    hour_class: str = ""  # HOUR_CLS_CODE


class TradeFrame(_Msg, frozen=True, tag="trade_frame"):
    """One WebSocket data frame exactly as received, with what the parser made of it."""

    provider: str
    market: str
    received_at: datetime
    raw: str  # the frame text, untouched
    tr_id: str
    ticks: list[Tick] = []
    parse_error: str = ""  # non-empty: the frame was rejected whole (kept in raw/, no ticks)


class QuoteSnapshot(_Msg, frozen=True, tag="quote_snapshot"):
    """One symbol's REST snapshot in a Track A sweep."""

    provider: str
    market: str
    symbol: str
    sweep_id: str  # e.g. 20261126T0910 (KST sweep slot)
    exchange_at: datetime | None  # exchange time if the answer carries one
    received_at: datetime
    price: int
    open: int
    high: int
    low: int
    volume: int  # accumulated volume
    value_krw: int = 0
    prev_close: int = 0
    upper_limit: int = 0
    lower_limit: int = 0
    bid_price: int = 0
    ask_price: int = 0
    bid_size: int = 0
    ask_size: int = 0
    halted: bool = False
    name: str = ""


# --------------------------------------------------------------------------- system events


class SystemEvent(_Msg, frozen=True, tag="system_event"):
    """Anything the system noticed. ``type`` names it (worker_state, rejection, reconnect, ...)."""

    record_id: str
    type: str
    severity: Severity
    at: datetime
    source: str  # worker / component that noticed it
    provider: str = ""
    message: str = ""
    details: dict[str, DetailValue] = {}


class GapMarker(_Msg, frozen=True, tag="gap_marker"):
    """Proof of what was missed: exact start, end and cause. Gaps are never back-filled."""

    record_id: str
    track: Literal["swing", "scalp", "raw", "bus", "system"]
    provider: str
    market: str
    symbols: list[str]
    start: datetime
    end: datetime
    reason: str
    detected_by: str
    details: dict[str, DetailValue] = {}
    type: Literal["gap_marker"] = "gap_marker"


class OverflowEntry(_Msg, frozen=True, tag="overflow"):
    """A Track B candidate that found no free slot."""

    record_id: str
    at: datetime
    provider: str
    symbol: str
    rule: str
    score: float
    priority: int


class MetricsSnapshot(_Msg, frozen=True, tag="metrics"):
    record_id: str
    at: datetime
    track_a_collection_rate: float | None
    track_b_collection_rate: float | None
    ws_reconnect_count: int
    slot_utilization: float
    mitigation_level: int
    disk_usage_percent: float
    cpu_usage_percent: float
    memory_usage_percent: float
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    records: dict[str, int] = {}
    gaps: dict[str, int] = {}


# --------------------------------------------------------------------------- typed system events
# Each says one thing another process acts on; each is archived as the SystemEvent its event()
# returns (the archive's ``type`` names stay what they were).

FeedState = Literal["disconnected", "failure"]
_FEED_EVENT_TYPE: dict[str, str] = {"disconnected": "ws_disconnected", "failure": "ws_failure"}


class FeedStatus(_Msg, frozen=True, tag="feed_status"):
    """The WebSocket feed's state as its collector sees it.

    ``disconnected``: a session failed or an attempt did not come up; the feed is down from ``at``.
    ``failure``: down for longer than ``track_b.pause_after_failure_s`` (CRITICAL): scalp recording
    pauses until data flows again. A data frame arriving is what says the feed is back.
    """

    record_id: str
    state: FeedState
    at: datetime
    source: str
    provider: str
    severity: Severity
    message: str
    details: dict[str, DetailValue] = {}

    def event(self) -> SystemEvent:
        return SystemEvent(
            record_id=self.record_id,
            type=_FEED_EVENT_TYPE[self.state],
            severity=self.severity,
            at=self.at,
            source=self.source,
            provider=self.provider,
            message=self.message,
            details=self.details,
        )


class UniverseBuilt(_Msg, frozen=True, tag="universe_built"):
    """A market's universe snapshot for ``day`` was written (the core reloads the day's universe)."""

    record_id: str
    at: datetime
    source: str
    provider: str
    market: str
    day: date
    symbols: int
    path: str

    @property
    def message(self) -> str:
        return f"{self.market} universe for {self.day}: {self.symbols} symbols"

    def event(self) -> SystemEvent:
        return SystemEvent(
            record_id=self.record_id,
            type="universe_built",
            severity="INFO",
            at=self.at,
            source=self.source,
            provider=self.provider,
            message=self.message,
            details={
                "market": self.market,
                "day": self.day.isoformat(),
                "symbols": self.symbols,
                "path": self.path,
            },
        )


class DayAnomalous(_Msg, frozen=True, tag="day_anomalous"):
    """``day`` (KST trading date) was anomalous: retention keeps its raw/ longer."""

    record_id: str
    at: datetime
    source: str
    provider: str
    day: date
    severity: Severity
    reasons: list[str]

    @property
    def message(self) -> str:
        return f"{self.day.isoformat()} is an anomalous day: " + "; ".join(self.reasons)

    def event(self) -> SystemEvent:
        return SystemEvent(
            record_id=self.record_id,
            type="day_anomalous",
            severity=self.severity,
            at=self.at,
            source=self.source,
            provider=self.provider,
            message=self.message,
            details={"day": self.day.isoformat(), "reasons": list(self.reasons)},
        )


class SweepSummary(_Msg, frozen=True, tag="sweep_summary"):
    """A Track A sweep is over: what it recorded (the core ranks its symbols' activity then)."""

    record_id: str
    at: datetime
    source: str
    provider: str
    severity: Severity
    sweep_id: str
    duration_s: float
    calls: int
    universe: int
    recorded: int
    failed: int
    collection_rate: float
    rate_limited: int = 0
    fallback_symbols: int = 0
    wrong_code: int = 0  # answers for another code than the one asked for (rejected)
    errors_by_code: list[str] = []  # "<code>=<count>"

    @property
    def message(self) -> str:
        return f"sweep {self.sweep_id}: {self.collection_rate:.2%}"

    def event(self) -> SystemEvent:
        details: dict[str, DetailValue] = {
            name: getattr(self, name)
            for name in (
                "sweep_id", "duration_s", "calls", "universe", "recorded", "failed", "collection_rate",
                "rate_limited", "fallback_symbols", "wrong_code",
            )
        }  # fmt: skip
        details["errors_by_code"] = list(self.errors_by_code)
        return SystemEvent(
            record_id=self.record_id,
            type="sweep_summary",
            severity=self.severity,
            at=self.at,
            source=self.source,
            provider=self.provider,
            message=self.message,
            details=details,
        )


TypedEvent = FeedStatus | UniverseBuilt | DayAnomalous | SweepSummary
_FEED_STATE_OF = {v: k for k, v in _FEED_EVENT_TYPE.items()}


def typed_from_event(ev: SystemEvent) -> SystemEvent | TypedEvent:
    """The typed message an archived `SystemEvent` was made from (the inverse of their ``event()``),
    to send a recorded day again; any other event, or one whose details do not fit, as it is."""
    head = {"record_id": ev.record_id, "at": ev.at, "source": ev.source, "provider": ev.provider}
    try:
        match ev.type:
            case "ws_disconnected" | "ws_failure":
                state = _FEED_STATE_OF[ev.type]
                fields = {**head, "state": state, "severity": ev.severity, "message": ev.message}
                return msgspec.convert({**fields, "details": ev.details}, FeedStatus)
            case "universe_built":
                return msgspec.convert({**ev.details, **head}, UniverseBuilt, strict=False)
            case "day_anomalous":
                day = ev.details.get("day") or ev.at.date().isoformat()
                reasons = ev.details.get("reasons") or [ev.message]
                fields = {**head, "severity": ev.severity, "day": day, "reasons": reasons}
                return msgspec.convert(fields, DayAnomalous, strict=False)
            case "sweep_summary":
                return msgspec.convert(
                    {**ev.details, **head, "severity": ev.severity}, SweepSummary, strict=False
                )
    except msgspec.ValidationError:
        pass
    return ev


IngestBody = (
    TradeFrame
    | QuoteSnapshot
    | SystemEvent
    | GapMarker
    | OverflowEntry
    | MetricsSnapshot
    | FeedStatus
    | UniverseBuilt
    | DayAnomalous
    | SweepSummary
)


# --------------------------------------------------------------------------- archive records


class Instrument(_Plain, frozen=True):
    symbol: str
    timestamp: datetime  # exchange time
    received_at: datetime
    price: dict[str, int]  # {open, high, low, close}
    volume: int
    bid_price: int
    ask_price: int
    bid_size: int
    ask_size: int
    prev_close: int | None = None
    # scalp samples: the window's activity
    trade_count: int | None = None
    window_volume: int | None = None
    window_high: int | None = None
    window_low: int | None = None
    vwap: float | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    sweep_id: str | None = None


class ContractMeta(_Plain, frozen=True):
    source: str
    market: str
    captured_at: datetime
    schema_version: str = SCHEMA_VERSION


class MarketDataContract(_Plain, frozen=True):
    meta: ContractMeta
    instruments: list[Instrument]


class SchemaInfo(_Plain, frozen=True):
    version: str
    field_count: int


class Quality(_Plain, frozen=True):
    validation_passed: bool
    guard_passed: bool
    quality_flag: QualityFlag


class Interpretation(_Plain, frozen=True):
    mitigation_level: int
    track: Track
    slot_number: int | None


class PatternRecord(_Plain, frozen=True):
    record_id: str
    session_id: str
    generated_at: datetime
    observation: MarketDataContract
    schema: SchemaInfo
    quality: Quality
    interpretation: Interpretation


class RawFrameRecord(_Plain, frozen=True):
    """A WS frame as received (raw/): record_id = collector run + seq."""

    record_id: str
    provider: str
    market: str
    received_at: datetime
    tr_id: str
    frame: str
    parse_error: str = ""


class ArchiveRecord(_Msg, frozen=True, tag="archive"):
    """One line for the writer. ``partition_at`` decides the file; the writer never guesses.

    ``line`` is the archive line already JSON-encoded by the core (no trailing newline): one of
    ``ArchiveLine``, embedded as JSON (``msgspec.Raw``, never base64: the writer copies it to the
    file as it is). Encoding once, in the core, keeps the writer boring and fast.
    """

    track: ArchiveKind
    provider: str
    market: str
    partition_at: datetime
    record_id: str
    line: msgspec.Raw


ArchiveLine = PatternRecord | RawFrameRecord | SystemEvent | GapMarker | OverflowEntry | MetricsSnapshot


ArchiveBody = ArchiveRecord


class StreamLine(_Msg, frozen=True, tag="stream_line"):
    """One committed archive line on its way to the archive stream (writer -> jetstream sink, after
    the fsync): ``path`` (relative to the data dir) and ``offset`` say where it is in the writer's
    archive, so a copy rebuilt from the stream is byte-identical whatever the stream's order."""

    path: str
    offset: int
    track: ArchiveKind
    market: str
    record_id: str
    line: msgspec.Raw


# --------------------------------------------------------------------------- envelope


class Envelope(msgspec.Struct, frozen=True, array_like=True):
    """One reliable message as a receiver hands it on. ``floor``: every seq below it is acknowledged
    or abandoned (the producer's replay bound overflowed); a receiver that expected less reports the
    hole."""

    producer: str
    run_id: str
    seq: int
    floor: int
    sent_at_ns: int
    body: msgspec.Raw


BodyT = TypeVar("BodyT")


class EnvelopeBatch(msgspec.Struct, Generic[BodyT], frozen=True, array_like=True):
    """What travels on a reliable hop: consecutive messages ``seq, seq+1, ...`` of one producer run
    in one bus message (one message per send costs ~8x more per record, PERF.md). Each body keeps its
    own seq, so acks, resends, holes and de-duplication stay per message. Decoded as
    ``EnvelopeBatch[msgspec.Raw]``, or with the receiver's body type in one pass."""

    producer: str
    run_id: str
    seq: int
    floor: int
    sent_at_ns: int
    bodies: list[BodyT]


# --------------------------------------------------------------------------- event bus


class Heartbeat(_Msg, frozen=True, tag="heartbeat"):
    worker: str
    pid: int
    run_id: str
    at: datetime
    stats: dict[str, float] = {}


class Ack(_Msg, frozen=True, tag="ack"):
    """Cumulative: everything from (producer, run_id) up to ``seq`` is durable downstream;
    ``received``: up to which seq the receiver has taken the messages in (durable or not), so a
    producer resends only what is missing, not what is merely waiting for a slow fsync (0: unknown)."""

    receiver: str
    producer: str
    run_id: str
    seq: int
    at_ns: int = 0
    received: int = 0


class MitigationLevel(_Msg, frozen=True, tag="mitigation"):
    level: int  # 0, 1, 2
    at: datetime
    reasons: list[str] = []


class SlotAssignment(_Plain, frozen=True):
    slot_number: int
    symbol: str
    rule: str
    since: datetime
    pinned: bool = False


class SlotCommand(_Msg, frozen=True, tag="slots"):
    """The full desired slot table (idempotent state, re-published periodically)."""

    version: int
    at: datetime
    slots: list[SlotAssignment]
    paused: bool = False


class Command(_Msg, frozen=True, tag="command"):
    """Control request (ctl socket, or ctl topic on the event bus)."""

    action: str  # status | start | stop | restart | slots_list | pin | unpin
    target: str = ""
    args: dict[str, str] = {}


class CommandReply(_Msg, frozen=True, tag="reply"):
    """Answer on the control socket. ``data`` values are encoded with ``observer.bus.encode`` (``msgspec.Raw(encode(x))``)."""

    ok: bool
    message: str = ""
    data: dict[str, msgspec.Raw] = {}


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


class MonitorStats(_Msg, frozen=True, tag="monitor_stats"):
    """The monitor (``stats.monitor``): health status, its reasons and figures, alert counts."""

    worker: str
    at: datetime
    # gauges
    health: int | None = None  # 0 green, 1 amber, 2 red; None before the first sample
    reasons: dict[str, int] = {}  # active health reason -> 1 amber / 2 red
    values: HealthValues = HealthValues()
    mitigation_level: int = 0
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


EventBody = (
    Heartbeat
    | Ack
    | MitigationLevel
    | SlotCommand
    | Command
    | CommandReply
    | SystemEvent
    | CoreStats
    | WriterStats
    | WsCollectorStats
    | MonitorStats
    | JetStreamStats
)


# --------------------------------------------------------------------------- public feed


class FeedMessage(_Msg, frozen=True, tag="feed"):
    """One archived line on the public feed (topic frame first, see ``observer.bus.feed_topic``).

    ``line`` is the archive line exactly as stored; ``at`` its own time (captured / received /
    window end / event time), so a replayed message carries the original time. ``seq`` counts per
    topic from 1 for one publisher run (``run_id``): a hole means the consumer lost messages (a slow
    subscriber is dropped at the HWM, never waited for). ``replay`` is the only other difference
    between a live and a replayed message."""

    topic: str
    track: ArchiveKind
    seq: int
    run_id: str
    at: datetime
    sent_at_ns: int
    line: msgspec.Raw
    replay: bool = False


class FeedStats(_Msg, frozen=True, tag="feed_stats"):
    """Published on topic ``feed.stats`` every few seconds and once at the end of a run: how many
    messages the publisher sent per track (compare with what arrived) and how many it had to drop
    itself because its own bounded queue was full (the pipeline never waits for the feed)."""

    run_id: str
    at: datetime
    published: dict[str, int]
    dropped: int = 0
    replay: bool = False
    final: bool = False


FeedBody = FeedMessage | FeedStats


def field_count(struct_type: type[msgspec.Struct]) -> int:
    return len(struct_type.__struct_fields__)
