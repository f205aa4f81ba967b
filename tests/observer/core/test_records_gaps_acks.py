"""Enrichment (record ids, partition times, session id), gap markers and the durability ledger."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import msgspec

from observer.clock import KST, ManualClock
from observer.core.acks import AckLedger
from observer.core.checkpoint import SamplerCheckpoint, SymbolCheckpoint, load_checkpoint, save_checkpoint
from observer.core.feed_outage import FeedOutage
from observer.core.gaps import MissedTradeDetector, restart_gap_marker
from observer.core.records import RecordFactory
from observer.core.rules import Verdict
from observer.core.sampler import Sampler
from observer.gap_markers import seq_gap
from observer.record_ids import kst_stamp as window_key
from observer.reliable import SeqGap
from observer.schema import (
    DetailValue,
    FeedStatus,
    GapMarker,
    PatternRecord,
    QuoteSnapshot,
    RawFrameRecord,
    SystemEvent,
    Tick,
    TradeFrame,
)

AT = datetime(2026, 11, 26, 10, 0, 0, tzinfo=KST)


def tick(s: float, cum: int, vol: int, symbol: str = "005930") -> Tick:
    at = AT + timedelta(seconds=s)
    return Tick(
        symbol=symbol,
        exchange_at=at,
        received_at=at,
        price=71_500,
        change=500,
        open=71_000,
        high=71_800,
        low=70_900,
        trade_volume=vol,
        cumulative_volume=cum,
        cumulative_value=0,
        ask_price=71_600,
        bid_price=71_500,
    )


def test_swing_record_is_a_pattern_record_partitioned_by_capture_time() -> None:
    factory = RecordFactory("kis", ManualClock(AT), "run1")
    # msgpack decodes times as UTC: ids and partitions must still use the KST trading date
    received = (AT + timedelta(minutes=10)).astimezone(UTC)
    snap = QuoteSnapshot(
        provider="kis",
        market="KOSPI",
        symbol="005930",
        sweep_id="20261126T1010",
        exchange_at=None,
        received_at=received,
        price=71_500,
        open=71_000,
        high=71_800,
        low=70_900,
        volume=10,
    )
    rec = factory.swing(snap, Verdict(None), level=1)
    assert rec.record_id == "swing:005930:20261126T1010" and rec.track == "swing"
    assert rec.partition_at == received
    line = msgspec.json.decode(rec.line, type=PatternRecord)
    assert line.session_id == "kis-20261126"
    assert line.schema.field_count == len(line.observation.instruments[0].__struct_fields__)
    assert line.interpretation.track == "swing" and line.interpretation.mitigation_level == 1
    assert line.quality.quality_flag == "normal" and line.observation.meta.captured_at == received


def test_scalp_record_id_and_window_fields() -> None:
    factory = RecordFactory("kis", ManualClock(AT), "run1")
    s: Sampler[str] = Sampler(time(9, 30), time(15, 0), 0)
    s.watch("005930", AT, "kis", "KOSPI")
    s.add_tick(tick(0.25, 100, 10), guard_passed=False, hold=None)
    (sample,) = s.due(AT + timedelta(seconds=0.5))
    rec = factory.scalp(sample, sample.level, slot_number=7)
    assert rec.record_id == "scalp:005930:20261126T100000.000" == f"scalp:005930:{window_key(AT)}"
    assert rec.partition_at == AT
    line = msgspec.json.decode(rec.line, type=PatternRecord)
    inst = line.observation.instruments[0]
    assert (inst.trade_count, inst.window_volume, inst.vwap) == (1, 10, 71_500.0)
    assert line.quality.quality_flag == "degraded" and line.interpretation.slot_number == 7


def test_raw_record_keeps_the_frame_verbatim() -> None:
    factory = RecordFactory("kis", ManualClock(AT), "run1")
    frame = TradeFrame(
        provider="kis", market="KOSPI", received_at=AT, raw="0|H0STCNT0|001|005930^...", tr_id="H0STCNT0"
    )
    rec = factory.raw(frame, "ws-collector", "abc", 42)
    assert rec.record_id == "raw:ws-collector:abc:42" and rec.partition_at == AT
    assert msgspec.json.decode(rec.line, type=RawFrameRecord).frame == frame.raw


def test_missed_trades_become_a_scalp_gap_marker_with_estimates() -> None:
    det = MissedTradeDetector("kis")
    assert det.observe(tick(0, 100, 10), "KOSPI") is None
    assert det.observe(tick(1, 110, 10), "KOSPI") is None  # 100 + 10: nothing missed
    marker = det.observe(tick(2, 170, 10), "KOSPI")  # 110 + 10 = 120 expected: 50 missed
    assert isinstance(marker, GapMarker)
    assert (marker.track, marker.reason, marker.symbols) == ("scalp", "missed_trades", ["005930"])
    assert marker.details["missed_volume"] == 50 and marker.details["estimated_trades"] == 5
    assert marker.start == AT + timedelta(seconds=1) and marker.end == AT + timedelta(seconds=2)
    assert marker.record_id == "gap:missed_trades:005930:110-170"
    assert det.observe(tick(2, 170, 10), "KOSPI") is None  # a replay: no second marker


def test_a_symbol_back_in_a_slot_starts_its_continuity_again() -> None:
    """Trades while no slot watched a symbol are not missed: forgetting it on re-entry means no marker."""
    det = MissedTradeDetector("kis")
    det.observe(tick(0, 100, 10), "KOSPI")
    det.forget("005930")  # it left its slot and came back: the core forgets it on the way in
    assert det.observe(tick(9, 900, 10), "KOSPI") is None  # 800 traded unwatched: not a gap
    assert isinstance(det.observe(tick(10, 950, 10), "KOSPI"), GapMarker)  # watched again: a gap is one


def test_bus_gap_marker_names_producer_and_range() -> None:
    gap = SeqGap("ws-collector", "r1", 10, 19, "observer", "producer_abandoned", 1_700_000_000_000_000_000)
    marker = seq_gap(
        gap, provider="kis", detected_by="observer", at=AT
    )  # wall time in the gap, the pipeline's clock wins
    assert marker.track == "bus" and marker.details["first_seq"] == 10 and marker.details["count"] == 10
    assert marker.record_id == "gap:bus:ws-collector:r1:10-19"
    assert marker.start == marker.end == AT


def _event(source: str, type_: str, at: datetime, **details: DetailValue) -> SystemEvent:
    return SystemEvent(
        record_id=f"e-{type_}-{at}",
        type=type_,
        severity="INFO",
        at=at,
        source=source,
        provider="kis",
        message="",
        details=details,
    )


def test_an_outage_starts_at_the_last_frame_received_and_its_windows_stay_gaps_after_it() -> None:
    feed = FeedOutage()
    s = timedelta(seconds=1)
    assert feed.frame_arrived("ws-collector", "r1", AT, AT - s) is None
    # the crash is noticed 3 s after the last frame (the supervisor's worker_state)
    feed.observe_supervisor(
        _event("supervisor", "worker_state", AT + 3 * s, worker="ws-collector", **{"from": "RUNNING"})
    )
    assert feed.down_since == AT  # from the last frame received, not from the notice
    assert feed.is_gap(AT + s / 2) and not feed.is_gap(AT - s / 2)
    restart = feed.frame_arrived("ws-collector", "r2", AT + 10 * s, AT + 10 * s)
    assert restart is not None and restart.previous.run_id == "r1" and restart.until == AT + 10 * s
    assert restart.previous.start == AT - s  # the marker: from the last trade's exchange second
    marker = restart_gap_marker(restart, "kis-sim", "KRX", ["000660", "005930"], "observer")
    assert (marker.reason, marker.start, marker.end) == ("collector_restart", AT - s, AT + 10 * s)
    assert (
        marker.symbols == ["000660", "005930"] and marker.record_id == "gap:collector_restart:ws-collector:r1"
    )
    # windows of the outage that close after the feed came back are still gaps; later ones are not
    assert feed.is_gap(AT + 9 * s) and not feed.is_gap(AT + 10 * s)
    # the same run again: no restart; a disconnect (the collector says so) also starts at the last frame
    assert feed.frame_arrived("ws-collector", "r2", AT + 11 * s, AT + 11 * s) is None
    feed.observe(
        FeedStatus(
            record_id="evt:ws-collector:r2:1",
            state="disconnected",
            at=AT + 15 * s,
            source="ws-collector",
            provider="kis",
            severity="WARNING",
            message="lost",
        )
    )
    assert feed.down_since == AT + 11 * s and feed.is_gap(AT + 12 * s)


def test_the_last_frame_survives_a_core_restart(tmp_path: Path) -> None:
    feed = FeedOutage()
    feed.frame_arrived("ws-collector", "r1", AT, AT)
    path = tmp_path / "sampler.json"
    save_checkpoint(path, SamplerCheckpoint(day=AT.date(), levels=[], symbols={}, feeds=feed.marks))
    restored = FeedOutage()
    checkpoint = load_checkpoint(path, AT.date())
    assert checkpoint is not None
    restored.restore(checkpoint.feeds)
    restart = restored.frame_arrived("ws-collector", "r2", AT + timedelta(seconds=5), None)
    assert restart is not None and restart.previous.received_at == AT


def test_ledger_acks_only_past_durable_and_unheld_entries() -> None:
    ledger = AckLedger()
    a = ledger.open("p", "r", 1)
    a.need = 5
    b = ledger.open("p", "r", 2)
    b.need = 6
    b.hold()
    c = ledger.open("p", "r", 3)
    assert ledger.releasable(4) == []
    assert ledger.releasable(6) == [("p", "r", 1)]  # b is held by an open window
    b.settle(9)  # its window's sample went out as archive seq 9
    assert ledger.releasable(8) == []
    assert ledger.releasable(9) == [("p", "r", 3)] and c.need == 0
    assert ledger.pending == 0


def test_checkpoint_round_trip_only_for_the_same_day(short_tmp: Path) -> None:
    cp = SamplerCheckpoint(
        day=AT.date(),
        levels=[(0, 0), (2_000, 1)],
        symbols={
            "005930": SymbolCheckpoint(next_start_ms=123, provider="kis", market="KOSPI", last=tick(0, 1, 1)),
        },
    )
    path = short_tmp / "state" / "sampler.json"
    save_checkpoint(path, cp)
    assert load_checkpoint(path, AT.date()) == cp
    assert load_checkpoint(path, AT.date() + timedelta(days=1)) is None
    path.write_bytes(b"{torn")
    assert load_checkpoint(path, AT.date()) is None


def test_one_keys_outage_flags_only_its_symbols_until_its_next_frame_or_its_failover() -> None:
    feed = FeedOutage()
    s = timedelta(seconds=1)
    for key in (1, 2):
        feed.frame_arrived("ws-collector", "r1", AT, AT, key)

    def down(key: int, at: datetime, symbols: list[str], state: str = "disconnected") -> FeedStatus:
        return FeedStatus(
            record_id=f"fs-{key}-{at.timestamp()}",
            state=state,  # type: ignore[arg-type]
            at=at,
            source="ws-collector",
            provider="kis",
            severity="WARNING",
            message="lost",
            key_index=key,
            symbols=symbols,
        )

    feed.observe(down(2, AT + 2 * s, ["B1", "B2"]))
    feed.frame_arrived("ws-collector", "r1", AT + 3 * s, AT + 3 * s, 1)  # key 1 streams on
    assert feed.down_since is None and not feed.is_gap(AT + s / 2)  # the feed as a whole is up
    assert feed.is_gap(AT + s / 2, "B1") and feed.is_gap(AT + 5 * s, "B2")  # from key 2's last frame
    assert not feed.is_gap(AT + 5 * s, "A1") and not feed.is_gap(AT - s / 2, "B1")
    feed.observe(down(2, AT + 4 * s, ["B1", "B2"], "failure"))
    assert feed.is_paused("B1") and not feed.is_paused("A1") and not feed.paused
    # key 2 failed over at +6 s: its symbols' outage ends there (they stream on other keys)
    feed.key_failed(2, AT + 6 * s)
    assert feed.is_gap(AT + 5 * s, "B1") and not feed.is_gap(AT + 6 * s, "B1")
    assert not feed.is_paused("B1")
    # a key whose next frame comes ends its own outage only
    feed.observe(down(1, AT + 7 * s, ["A1"]))
    feed.frame_arrived("ws-collector", "r1", AT + 8 * s, AT + 8 * s, 2)
    assert feed.is_gap(AT + 9 * s, "A1")
    feed.frame_arrived("ws-collector", "r1", AT + 10 * s, AT + 10 * s, 1)
    assert feed.is_gap(AT + 9 * s, "A1") and not feed.is_gap(AT + 10 * s, "A1")
