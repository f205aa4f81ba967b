"""Enrichment: PatternRecords and every other archive line, encoded once, with their partition time.

Identifiers come from `observer.record_ids` (deterministic, so a record derived twice — after a
core restart — is dropped by the writer as a duplicate): swing by symbol and sweep, scalp by symbol
and window start, raw by the frame's ingest envelope (producer, run, seq), the core's own events
by its run and a count.

``session_id`` is ``{provider}-{YYYYMMDD}`` — the provider and the KST trading date of the
observation: stable across core restarts and identical for both tracks of one trading day.

``partition_at`` (the writer's ``verify`` applies the same rules): swing → observation.meta.captured_at
(the snapshot's receive time); scalp → the sample's window_start; raw → received_at; system → the
event's ``at`` or the gap's ``start``; overflow → ``at``; metrics → ``at``.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from observer import record_ids
from observer.clock import KST, Clock
from observer.core.rules import Verdict
from observer.core.sampler import Sample
from observer.schema import (
    SCHEMA_VERSION,
    ArchiveKind,
    ArchiveRecord,
    ContractMeta,
    DetailValue,
    GapMarker,
    Instrument,
    Interpretation,
    MarketDataContract,
    MetricsSnapshot,
    OverflowEntry,
    PatternRecord,
    Quality,
    QualityFlag,
    QuoteSnapshot,
    RawFrameRecord,
    SchemaInfo,
    SystemEvent,
    TradeFrame,
    field_count,
)

_SCHEMA = SchemaInfo(version=SCHEMA_VERSION, field_count=field_count(Instrument))


def session_id(provider: str, at: datetime) -> str:
    return f"{provider}-{at.astimezone(KST):%Y%m%d}"


class RecordFactory:
    """Builds archive records for one core run. One JSON encoder, reused for every line."""

    def __init__(self, provider: str, clock: Clock, run_id: str, source: str = "observer"):
        self.provider = provider
        self._clock = clock
        self._source = source
        self._encoder = msgspec.json.Encoder()
        self._event_ids = record_ids.EventIds(source, run_id)

    # -- market data
    def swing(self, snap: QuoteSnapshot, verdict: Verdict, level: int) -> ArchiveRecord:
        inst = Instrument(
            symbol=snap.symbol,
            timestamp=snap.exchange_at or snap.received_at,
            received_at=snap.received_at,
            price={"open": snap.open, "high": snap.high, "low": snap.low, "close": snap.price},
            volume=snap.volume,
            bid_price=snap.bid_price,
            ask_price=snap.ask_price,
            bid_size=snap.bid_size,
            ask_size=snap.ask_size,
            prev_close=snap.prev_close or None,
            sweep_id=snap.sweep_id,
        )
        record = PatternRecord(
            record_id=record_ids.swing(snap.symbol, snap.sweep_id),
            session_id=session_id(snap.provider, snap.received_at),
            generated_at=self._clock.now(),
            observation=MarketDataContract(
                meta=ContractMeta(source=snap.provider, market=snap.market, captured_at=snap.received_at),
                instruments=[inst],
            ),
            schema=_SCHEMA,
            quality=Quality(
                validation_passed=True,
                guard_passed=verdict.guard_passed,
                quality_flag="normal" if verdict.guard_passed else "degraded",
            ),
            interpretation=Interpretation(mitigation_level=level, track="swing", slot_number=None),
        )
        return self._wrap("swing", snap.provider, snap.market, snap.received_at, record.record_id, record)

    def scalp(
        self, sample: Sample, level: int, slot_number: int | None, *, gap: bool = False
    ) -> ArchiveRecord:
        """``gap``: the window fell inside a feed outage (the sample only repeats the last state)."""
        last = sample.last
        window = sample.window
        inst = Instrument(
            symbol=last.symbol,
            timestamp=last.exchange_at,
            received_at=last.received_at,
            price={"open": last.open, "high": last.high, "low": last.low, "close": last.price},
            volume=last.cumulative_volume,
            bid_price=last.bid_price,
            ask_price=last.ask_price,
            bid_size=last.bid_size,
            ask_size=last.ask_size,
            prev_close=last.price - last.change,
            trade_count=window.trade_count,
            window_volume=window.volume,
            window_high=window.high if window.trade_count else None,
            window_low=window.low if window.trade_count else None,
            vwap=window.vwap,
            window_start=sample.start,
            window_end=sample.end,
        )
        flag: QualityFlag = "gap" if gap else "normal" if sample.guard_passed else "degraded"
        record = PatternRecord(
            record_id=record_ids.scalp(last.symbol, sample.start),
            session_id=session_id(sample.provider, sample.start),
            generated_at=self._clock.now(),
            observation=MarketDataContract(
                meta=ContractMeta(source=sample.provider, market=sample.market, captured_at=sample.end),
                instruments=[inst],
            ),
            schema=_SCHEMA,
            quality=Quality(validation_passed=True, guard_passed=sample.guard_passed, quality_flag=flag),
            interpretation=Interpretation(mitigation_level=level, track="scalp", slot_number=slot_number),
        )
        return self._wrap("scalp", sample.provider, sample.market, sample.start, record.record_id, record)

    def raw(self, frame: TradeFrame, producer: str, run_id: str, seq: int) -> ArchiveRecord:
        record = RawFrameRecord(
            record_id=record_ids.raw(producer, run_id, seq),
            provider=frame.provider,
            market=frame.market,
            received_at=frame.received_at,
            tr_id=frame.tr_id,
            frame=frame.raw,
            parse_error=frame.parse_error,
        )
        return self._wrap("raw", frame.provider, frame.market, frame.received_at, record.record_id, record)

    # -- system lines
    def line(self, body: SystemEvent | GapMarker | OverflowEntry | MetricsSnapshot) -> ArchiveRecord:
        match body:
            case GapMarker():
                return self._wrap(
                    "system", body.provider or self.provider, body.market, body.start, body.record_id, body
                )
            case SystemEvent():
                return self._wrap("system", body.provider or self.provider, "", body.at, body.record_id, body)
            case OverflowEntry():
                return self._wrap(
                    "overflow", body.provider or self.provider, "", body.at, body.record_id, body
                )
            case MetricsSnapshot():
                return self._wrap("metrics", self.provider, "", body.at, body.record_id, body)

    def event(self, type_: str, severity: str, message: str, details: dict[str, DetailValue]) -> SystemEvent:
        return SystemEvent(
            record_id=self._event_ids.next(),
            type=type_,
            severity=severity,  # type: ignore[arg-type]
            at=self._clock.now(),
            source=self._source,
            provider=self.provider,
            message=message,
            details=details,
        )

    def _wrap(
        self,
        track: ArchiveKind,
        provider: str,
        market: str,
        partition_at: datetime,
        record_id: str,
        body: msgspec.Struct,
    ) -> ArchiveRecord:
        return ArchiveRecord(
            track=track,
            provider=provider,
            market=market,
            partition_at=partition_at,
            record_id=record_id,
            line=msgspec.Raw(self._encoder.encode(body)),
        )
