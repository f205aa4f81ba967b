"""Archive lines as stored (``PatternRecord``, ``RawFrameRecord`` and the events) and the
``ArchiveRecord`` the core pushes to the writer (``ArchiveBody``)."""

from __future__ import annotations

from datetime import datetime

import msgspec

from observer.schema.base import SCHEMA_VERSION, ArchiveKind, QualityFlag, Track, _Msg, _Plain
from observer.schema.events import GapMarker, MetricsSnapshot, OverflowEntry, SystemEvent


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


class ArchiveRecord(_Msg, frozen=True, tag="archive", gc=False):
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
