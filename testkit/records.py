"""Archive records of every track (swing, scalp, raw, system, overflow, metrics) as the writer receives
them: `record` (an `ArchiveRecord`) and `line_for` (its JSONL line), for writer tests and benches."""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec

from observer.clock import KST
from observer.schema import (
    ArchiveRecord,
    ContractMeta,
    Instrument,
    Interpretation,
    MarketDataContract,
    MetricsSnapshot,
    OverflowEntry,
    PatternRecord,
    Quality,
    RawFrameRecord,
    SchemaInfo,
    SystemEvent,
)

_json = msgspec.json.Encoder()
DAY = datetime(2026, 11, 26, 9, 30, tzinfo=KST)


def pattern(record_id: str, at: datetime, track: str, market: str = "KOSPI") -> PatternRecord:
    scalp = track == "scalp"
    inst = Instrument(
        symbol="005930",
        timestamp=at,
        received_at=at + timedelta(milliseconds=12),
        price={"open": 70_000, "high": 70_100, "low": 69_900, "close": 70_000},
        volume=1_234_567,
        bid_price=69_900,
        ask_price=70_000,
        bid_size=100,
        ask_size=200,
        trade_count=3 if scalp else None,
        window_start=at if scalp else None,
        window_end=at + timedelta(milliseconds=500) if scalp else None,
    )
    return PatternRecord(
        record_id=record_id,
        session_id="20261126-kis",
        generated_at=at + timedelta(milliseconds=600),
        observation=MarketDataContract(
            meta=ContractMeta(source="kis", market=market, captured_at=at), instruments=[inst]
        ),
        schema=SchemaInfo(version="1.0", field_count=7),
        quality=Quality(validation_passed=True, guard_passed=True, quality_flag="normal"),
        interpretation=Interpretation(mitigation_level=0, track="scalp" if scalp else "swing", slot_number=1),
    )


def line_for(track: str, record_id: str, at: datetime, market: str = "KOSPI") -> bytes:
    body: msgspec.Struct
    match track:
        case "swing" | "scalp":
            body = pattern(record_id, at, track, market)
        case "raw":
            body = RawFrameRecord(
                record_id=record_id,
                provider="kis",
                market=market,
                received_at=at,
                tr_id="H0STCNT0",
                frame="0|H0STCNT0|001|005930^093000^70000",
            )
        case "system":
            body = SystemEvent(
                record_id=record_id, type="test", severity="INFO", at=at, source="test", provider="kis"
            )
        case "overflow":
            body = OverflowEntry(
                record_id=record_id,
                at=at,
                provider="kis",
                symbol="005930",
                rule="volume_surge",
                score=3.5,
                priority=1,
            )
        case "metrics":
            body = MetricsSnapshot(
                record_id=record_id,
                at=at,
                track_a_collection_rate=1.0,
                track_b_collection_rate=0.99,
                ws_reconnect_count=0,
                slot_utilization=1.0,
                mitigation_level=0,
                disk_usage_percent=10.0,
                cpu_usage_percent=5.0,
                memory_usage_percent=20.0,
                latency_p50_ms=1.0,
                latency_p95_ms=2.0,
                latency_p99_ms=3.0,
            )
        case _:
            raise ValueError(track)
    return _json.encode(body)


def record(track: str, record_id: str, at: datetime, market: str = "KOSPI") -> ArchiveRecord:
    return ArchiveRecord(
        track=track,  # type: ignore[arg-type]
        provider="kis",
        market=market,
        partition_at=at,
        record_id=record_id,
        line=msgspec.Raw(line_for(track, record_id, at, market)),
    )
