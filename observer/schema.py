"""Every message that crosses a process boundary, and every archive line.

All are frozen msgspec Structs tagged by ``kind``. Bus bodies are grouped into one union per
receiving role:

* ``IngestBody``  — what collectors (and any worker that wants something archived) push to the core;
* ``ArchiveBody`` — what the core pushes to the writer;
* ``EventBody``   — what travels on the PUB/SUB event bus (heartbeats, acks, levels, slots, stats).

Every reliable message travels inside an ``Envelope`` (producer, run id, seq, floor, send time).
Archive lines (``PatternRecord``, ``SystemEvent``, ``GapMarker``, ``OverflowEntry``, ``RawFrameRecord``,
``MetricsSnapshot``) carry a deterministic ``record_id``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

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


IngestBody = TradeFrame | QuoteSnapshot | SystemEvent | GapMarker | OverflowEntry | MetricsSnapshot


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
    ``ArchiveLine``. Encoding once, in the core, keeps the writer boring and fast.
    """

    track: ArchiveKind
    provider: str
    market: str
    partition_at: datetime
    record_id: str
    line: bytes


ArchiveLine = PatternRecord | RawFrameRecord | SystemEvent | GapMarker | OverflowEntry | MetricsSnapshot


ArchiveBody = ArchiveRecord


# --------------------------------------------------------------------------- envelope


class Envelope(msgspec.Struct, frozen=True, array_like=True):
    """The reliable-bus envelope. ``floor``: every seq below it is acknowledged or abandoned (the
    producer's replay bound overflowed); a receiver that expected less reports the hole."""

    producer: str
    run_id: str
    seq: int
    floor: int
    sent_at_ns: int
    body: msgspec.Raw


# --------------------------------------------------------------------------- event bus


class Heartbeat(_Msg, frozen=True, tag="heartbeat"):
    worker: str
    pid: int
    run_id: str
    at: datetime
    stats: dict[str, float] = {}


class Ack(_Msg, frozen=True, tag="ack"):
    """Cumulative: everything from (producer, run_id) up to ``seq`` is durable downstream."""

    receiver: str
    producer: str
    run_id: str
    seq: int
    at_ns: int = 0


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


class WorkerStats(_Msg, frozen=True, tag="stats"):
    """Periodic counters a worker publishes (topic stats.<worker>)."""

    worker: str
    at: datetime
    counters: dict[str, float] = {}
    gauges: dict[str, float] = {}


EventBody = (
    Heartbeat | Ack | MitigationLevel | SlotCommand | Command | CommandReply | WorkerStats | SystemEvent
)


def field_count(struct_type: type[msgspec.Struct]) -> int:
    return len(struct_type.__struct_fields__)
