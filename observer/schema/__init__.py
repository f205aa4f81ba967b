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

Modules (import from ``observer.schema``; the unions that span modules are defined here):
``base`` (version, literals, Struct bases), ``market`` (ticks, trade frames, quotes), ``events``
(system events and the typed events), ``archive`` (archive lines, ``ArchiveRecord``), ``envelope``
(``Envelope``, ``EnvelopeBatch``, ``StreamLine``), ``coordination`` (heartbeats, acks, levels, slots,
control commands), ``stats`` (per-worker stats), ``feed`` (public feed).
"""

from __future__ import annotations

from observer.schema.archive import (
    ArchiveBody,
    ArchiveLine,
    ArchiveRecord,
    ContractMeta,
    Instrument,
    Interpretation,
    MarketDataContract,
    PatternRecord,
    Quality,
    RawFrameRecord,
    SchemaInfo,
)
from observer.schema.base import (
    SCHEMA_VERSION,
    ArchiveKind,
    DetailValue,
    QualityFlag,
    Severity,
    Track,
    field_count,
)
from observer.schema.coordination import (
    Ack,
    Command,
    CommandReply,
    Heartbeat,
    MitigationLevel,
    SlotAssignment,
    SlotCommand,
)
from observer.schema.envelope import BodyT, Envelope, EnvelopeBatch, StreamLine
from observer.schema.events import (
    DayAnomalous,
    FeedState,
    FeedStatus,
    GapMarker,
    MetricsSnapshot,
    OverflowEntry,
    SweepSummary,
    SystemEvent,
    TypedEvent,
    UniverseBuilt,
    typed_from_event,
)
from observer.schema.feed import FeedBody, FeedMessage, FeedStats
from observer.schema.market import QuoteSnapshot, Tick, TradeFrame
from observer.schema.stats import (
    LAG_BUCKETS_S,
    CoreStats,
    HealthValues,
    JetStreamStats,
    MonitorStats,
    PeerSeen,
    SlotProgress,
    WorkerStats,
    WriterStats,
    WsCollectorStats,
)

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


__all__ = [
    "LAG_BUCKETS_S",
    "SCHEMA_VERSION",
    "Ack",
    "ArchiveBody",
    "ArchiveKind",
    "ArchiveLine",
    "ArchiveRecord",
    "BodyT",
    "Command",
    "CommandReply",
    "ContractMeta",
    "CoreStats",
    "DayAnomalous",
    "DetailValue",
    "Envelope",
    "EnvelopeBatch",
    "EventBody",
    "FeedBody",
    "FeedMessage",
    "FeedState",
    "FeedStats",
    "FeedStatus",
    "GapMarker",
    "HealthValues",
    "Heartbeat",
    "IngestBody",
    "Instrument",
    "Interpretation",
    "JetStreamStats",
    "MarketDataContract",
    "MetricsSnapshot",
    "MitigationLevel",
    "MonitorStats",
    "OverflowEntry",
    "PatternRecord",
    "PeerSeen",
    "Quality",
    "QualityFlag",
    "QuoteSnapshot",
    "RawFrameRecord",
    "SchemaInfo",
    "Severity",
    "SlotAssignment",
    "SlotCommand",
    "SlotProgress",
    "StreamLine",
    "SweepSummary",
    "SystemEvent",
    "Tick",
    "Track",
    "TradeFrame",
    "TypedEvent",
    "UniverseBuilt",
    "WorkerStats",
    "WriterStats",
    "WsCollectorStats",
    "field_count",
    "typed_from_event",
]
