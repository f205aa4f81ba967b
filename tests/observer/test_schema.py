"""A round trip (msgspec JSON on the bus and in the archive) for every message type."""

from datetime import datetime, timedelta

import msgspec
import pytest

from observer import schema as s
from observer.bus import archive_decoder, encode, event_decoder, ingest_decoder
from observer.clock import KST

AT = datetime(2026, 11, 26, 9, 31, 2, 500000, tzinfo=KST)


def _tick() -> s.Tick:
    return s.Tick(
        symbol="005930",
        exchange_at=AT,
        received_at=AT + timedelta(milliseconds=3),
        price=71000,
        change=500,
        open=70500,
        high=71200,
        low=70400,
        trade_volume=10,
        cumulative_volume=1000,
        cumulative_value=71_000_000,
        ask_price=71100,
        bid_price=71000,
        side="buy",
    )


def _pattern() -> s.PatternRecord:
    inst = s.Instrument(
        symbol="005930",
        timestamp=AT,
        received_at=AT,
        price={"open": 1, "high": 2, "low": 1, "close": 2},
        volume=5,
        bid_price=1,
        ask_price=2,
        bid_size=3,
        ask_size=4,
        trade_count=0,
    )
    return s.PatternRecord(
        record_id="scalp:005930:20261126T093102.500",
        session_id="kis-20261126",
        generated_at=AT,
        observation=s.MarketDataContract(
            meta=s.ContractMeta(source="kis", market="KOSPI", captured_at=AT), instruments=[inst]
        ),
        schema=s.SchemaInfo(version=s.SCHEMA_VERSION, field_count=7),
        quality=s.Quality(validation_passed=True, guard_passed=True, quality_flag="normal"),
        interpretation=s.Interpretation(mitigation_level=0, track="scalp", slot_number=3),
    )


INGEST = [
    s.TradeFrame(
        provider="kis",
        market="KRX",
        received_at=AT,
        raw="0|H0STCNT0|001|...",
        tr_id="H0STCNT0",
        ticks=[_tick()],
    ),
    s.QuoteSnapshot(
        provider="kis",
        market="KOSPI",
        symbol="005930",
        sweep_id="20261126T0910",
        exchange_at=None,
        received_at=AT,
        price=71000,
        open=70000,
        high=71500,
        low=69900,
        volume=123456,
    ),
    s.SystemEvent(
        record_id="e1",
        type="reconnect",
        severity="WARNING",
        at=AT,
        source="ws-collector",
        details={"attempt": 3, "symbols": ["005930"], "ok": False, "delay_s": 1.5, "none": None},
    ),
    s.GapMarker(
        record_id="g1",
        track="scalp",
        provider="kis",
        market="KRX",
        symbols=["005930"],
        start=AT,
        end=AT + timedelta(seconds=5),
        reason="ws_disconnect",
        detected_by="ws-collector",
    ),
    s.OverflowEntry(
        record_id="o1", at=AT, provider="kis", symbol="000660", rule="volume_surge", score=3.5, priority=0
    ),
    s.MetricsSnapshot(
        record_id="m1",
        at=AT,
        track_a_collection_rate=0.998,
        track_b_collection_rate=None,
        ws_reconnect_count=0,
        slot_utilization=1.0,
        mitigation_level=0,
        disk_usage_percent=20.0,
        cpu_usage_percent=5.0,
        memory_usage_percent=10.0,
        latency_p50_ms=1.0,
        latency_p95_ms=2.0,
        latency_p99_ms=3.0,
        records={"swing": 4000},
        gaps={"scalp": 1},
    ),
]

EVENTS = [
    s.Heartbeat(worker="writer", pid=42, run_id="abc", at=AT, stats={"queue_bytes": 0.0}),
    s.Ack(receiver="writer", producer="observer", run_id="r1", seq=99, at_ns=1),
    s.MitigationLevel(level=1, at=AT, reasons=["cpu>=80% for 300s"]),
    s.SlotCommand(
        version=3,
        at=AT,
        slots=[s.SlotAssignment(slot_number=1, symbol="005930", rule="manual", since=AT, pinned=True)],
    ),
    s.Command(action="pin", target="005930"),
    s.CommandReply(ok=True, message="sent", data={"x": msgspec.Raw(encode([1, 2]))}),
    s.CoreStats(worker="observer", at=AT, records={"swing": 4000}, event_lag_max_s=0.1),
]


@pytest.mark.parametrize("msg", INGEST, ids=lambda m: type(m).__name__)
def test_ingest_round_trip(msg: msgspec.Struct) -> None:
    assert ingest_decoder.decode(encode(msg)) == msg


@pytest.mark.parametrize("msg", EVENTS, ids=lambda m: type(m).__name__)
def test_event_round_trip(msg: msgspec.Struct) -> None:
    back = event_decoder.decode(encode(msg))
    if isinstance(msg, s.CommandReply):
        assert isinstance(back, s.CommandReply) and msgspec.json.decode(back.data["x"]) == [1, 2]
    else:
        assert back == msg


def test_archive_record_round_trip_and_pattern_json() -> None:
    rec = _pattern()
    line = msgspec.json.encode(rec)
    assert msgspec.json.decode(line, type=s.PatternRecord) == rec
    arch = s.ArchiveRecord(
        track="scalp",
        provider="kis",
        market="KRX",
        partition_at=AT,
        record_id=rec.record_id,
        line=msgspec.Raw(line),
    )
    assert archive_decoder.decode(encode(arch)) == arch


def test_pattern_record_has_exactly_the_design_fields() -> None:
    doc = msgspec.json.decode(msgspec.json.encode(_pattern()))
    assert set(doc) == {
        "record_id",
        "session_id",
        "generated_at",
        "observation",
        "schema",
        "quality",
        "interpretation",
    }
    assert set(doc["quality"]) == {"validation_passed", "guard_passed", "quality_flag"}
    assert set(doc["interpretation"]) == {"mitigation_level", "track", "slot_number"}
    assert set(doc["observation"]["meta"]) == {"source", "market", "captured_at", "schema_version"}
    assert doc["generated_at"].endswith("+09:00")


def test_gap_marker_json_has_design_fields() -> None:
    doc = msgspec.json.decode(msgspec.json.encode(INGEST[3]))
    for key in (
        "type",
        "track",
        "provider",
        "market",
        "symbols",
        "start",
        "end",
        "reason",
        "detected_by",
        "record_id",
    ):
        assert key in doc
    assert doc["type"] == "gap_marker"


def test_tick_round_trip_json() -> None:
    t = _tick()
    assert msgspec.json.decode(msgspec.json.encode(t), type=s.Tick) == t


def test_envelope_round_trip() -> None:
    env = s.Envelope("p", "r", 5, 1, 123, msgspec.Raw(encode(INGEST[0])))
    back = msgspec.json.decode(encode(env), type=s.Envelope)
    assert (back.producer, back.run_id, back.seq, back.floor) == ("p", "r", 5, 1)
    assert ingest_decoder.decode(back.body) == INGEST[0]


def test_wrong_kind_is_rejected() -> None:
    with pytest.raises(msgspec.ValidationError):
        ingest_decoder.decode(encode(EVENTS[0]))


def test_bus_keeps_kst_offsets() -> None:
    back = ingest_decoder.decode(encode(INGEST[0]))
    assert isinstance(back, s.TradeFrame)
    assert back.received_at.utcoffset() == timedelta(hours=9)
    assert back.ticks[0].exchange_at.isoformat().endswith("+09:00")


def test_feed_round_trip() -> None:
    from observer.bus import feed_decoder, feed_topic

    line = encode(_pattern())
    msg = s.FeedMessage(
        topic=feed_topic("scalp", "KRX", "scalp:005930:20261126T093102.500", line),
        track="scalp",
        seq=7,
        run_id="r1",
        at=AT,
        sent_at_ns=1,
        line=msgspec.Raw(line),
        replay=True,
    )
    back = feed_decoder.decode(encode(msg))
    assert isinstance(back, s.FeedMessage) and back.topic == "scalp.KRX.005930"
    assert bytes(back.line) == line and back.at == AT and back.replay
    stats = s.FeedStats(run_id="r1", at=AT, published={"scalp": 3}, dropped=1, final=True)
    assert feed_decoder.decode(encode(stats)) == stats
