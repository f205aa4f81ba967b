"""The core as a real process on real sockets: routing, rejections, acks, slots."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from observer.bus import MITIGATION, SLOTS, ctl_topic, stats_topic
from observer.reliable import ReliableSender, hop_endpoints
from observer.schema import (
    Command,
    CoreStats,
    FeedState,
    FeedStatus,
    GapMarker,
    MitigationLevel,
    OverflowEntry,
    SlotCommand,
    SystemEvent,
    UniverseBuilt,
)
from tests.conftest import wait_for
from tests.observer.core.harness import CoreHarness, write_universe

SYMBOLS = [f"{i:06d}" for i in range(1, 11)]


@pytest.fixture
def core(short_tmp: Path) -> Iterator[CoreHarness]:
    h = CoreHarness(short_tmp, forwarder=True)
    write_universe(h.cfg, h.day, SYMBOLS)
    yield h
    h.stop()


def _until(h: CoreHarness, predicate, timeout_s: float = 15.0, what: str = ""):  # type: ignore[no-untyped-def]
    def check():  # type: ignore[no-untyped-def]
        h.poll()
        return predicate()

    return wait_for(check, timeout_s, what=what)


@pytest.mark.timeout(60)
def test_bad_inputs_never_reach_swing_or_scalp_and_each_has_its_event(core: CoreHarness) -> None:
    h = core
    h.start_core()
    good = h.tick("000001")
    bad_ticks = {
        "price_positive": h.tick("000002", price=0, low=0),
        "limit_band": h.tick("000003", price=14_000, high=14_000),
        "ohlc_order": h.tick("000004", price=10_000, high=9_000, low=9_500),
        "volume_nonnegative": h.tick("000005", volume=-5),
        "session_time": h.tick("000006", exchange_at=h.now().replace(hour=7)),
        "clock_skew": h.tick("000007", exchange_at=h.later(60)),
        "universe": h.tick("999999"),
        "required_fields": h.tick("00 08!"),
    }
    h.send(h.frame([good, *bad_ticks.values()]))
    bad_snaps = {
        "limit_band": h.snapshot("000001", "S1", price=20_000, high=20_000),
        "price_positive": h.snapshot("000002", "S1", price=-1),
        "universe": h.snapshot("888888", "S1"),
    }
    for snap in bad_snaps.values():
        h.send(snap)
    h.send(h.snapshot("000003", "S1"))  # a good one
    h.send(h.frame([], raw="garbage", parse_error="frame does not divide"))

    rules = set(bad_ticks) | set(bad_snaps)
    _until(h, lambda: rules <= {e.details.get("rule") for e in h.writer.events("rejection")}, what="events")
    _until(h, lambda: h.collector.acked == h.collector.last_seq, what="everything acked upstream")
    _until(h, lambda: h.writer.patterns("scalp"), what="a scalp sample of the good tick")
    swing = h.writer.patterns("swing")
    assert [p.record_id for p in swing] == ["swing:000003:S1"]
    scalp = [p.observation.instruments[0] for p in h.writer.patterns("scalp")]
    assert {i.symbol for i in scalp} <= {"000001", "000003"}
    # 000003's rejected tick never reached scalp: its samples carry only the valid Track A state
    for inst in (i for i in scalp if i.symbol == "000003"):
        assert inst.trade_count == 0 and inst.price["close"] != 14_000
    assert len(h.writer.lines("raw")) == 2  # both frames kept verbatim, the broken one too


def _count(event: SystemEvent) -> int:
    value = event.details.get("count")
    return value if isinstance(value, int) else 0


@pytest.mark.timeout(60)
def test_rejections_are_rate_limited_with_a_summary_count(core: CoreHarness) -> None:
    h = core
    h.start_core()
    for _ in range(30):
        h.send(h.frame([h.tick("000002", price=0, low=0)]))
    _until(
        h,
        lambda: sum(_count(e) for e in h.writer.events("rejection")) >= 30,
        what="first event plus a summary adding up to 30",
    )
    assert 2 <= len(h.writer.events("rejection")) <= 4


@pytest.mark.timeout(60)
def test_samples_hold_upstream_acks_until_durable_and_follow_the_level(core: CoreHarness) -> None:
    h = core
    h.start_core()
    h.subscribe([SLOTS])
    _until(
        h, lambda: any(isinstance(b, SlotCommand) and b.slots for _, b in h.events_seen), what="seeded slots"
    )
    seq = h.send(h.frame([h.tick("000001")]))
    _until(h, lambda: h.writer.lines("raw"), what="raw record")
    # the raw line is durable, but the tick sits in an open window: no ack upstream yet
    assert h.collector.acked < seq
    _until(h, lambda: h.collector.acked >= seq, what="ack after the sample is durable")
    ids = {p.record_id for p in h.writer.patterns("scalp")}
    assert any(i.startswith("scalp:000001:") for i in ids)

    def level_applied() -> bool:
        h.publish(MITIGATION, MitigationLevel(level=2, at=h.now()))  # idempotent; PUB joins late
        return bool(h.writer.events("sampling_level"))

    _until(h, level_applied, what="level applied")
    h.send(h.frame([h.tick("000001")]))

    def wide_windows() -> bool:
        for p in h.writer.patterns("scalp"):
            inst = p.observation.instruments[0]
            assert inst.window_start is not None and inst.window_end is not None
            if (inst.window_end - inst.window_start).total_seconds() == 2.0:
                return p.interpretation.mitigation_level == 2
        return False

    _until(h, wide_windows, what="2 s windows at level 2")


@pytest.mark.timeout(60)
def test_pin_publishes_slots_and_a_restart_resumes_the_table(core: CoreHarness) -> None:
    h = core
    h.start_core()
    h.subscribe([SLOTS])

    def table() -> SlotCommand | None:
        found = [b for _, b in h.events_seen if isinstance(b, SlotCommand)]
        return found[-1] if found else None

    _until(h, lambda: table() is not None and len(table().slots) == len(SYMBOLS), what="seeded table")  # type: ignore[union-attr]

    def pinned() -> bool:
        h.publish(ctl_topic("observer"), Command(action="pin", target="000007"))  # idempotent; PUB joins late
        return any(s.pinned and s.symbol == "000007" for s in table().slots)  # type: ignore[union-attr]

    _until(h, pinned, what="pin")
    state = Path(h.cfg.paths.data_dir) / "state" / "slots.json"
    assert b'"pinned":true' in state.read_bytes()
    h.kill_core()
    h.events_seen.clear()
    h.start_core()
    _until(h, lambda: h.writer.events("slots_resumed"), what="resumed event")
    _until(h, lambda: table() is not None, what="table after restart")
    resumed = table()
    assert resumed is not None
    assert any(s.pinned and s.symbol == "000007" for s in resumed.slots)
    assert isinstance(h.writer.events("slot_pin")[0], SystemEvent)


@pytest.mark.timeout(60)
def test_stats_are_published_with_rates_and_rejections(core: CoreHarness) -> None:
    h = core
    h.start_core()
    h.subscribe([stats_topic("observer")])
    h.until(lambda: h.writer.events("slots_seeded"), what="core up")
    h.send(h.frame([h.tick("000001"), h.tick("000002", price=0, low=0)]))
    h.send(h.snapshot("000003", "S1"))
    h.send(h.snapshot("000003", "S2", volume=2_000))

    def stats() -> CoreStats | None:
        found = [b for _, b in h.events_seen if isinstance(b, CoreStats) and b.samples_written]
        return found[-1] if found else None

    s = h.until(stats, what="stats with durable samples")
    assert s is not None
    assert s.records["raw"] == 1 and s.records["swing"] == 2
    assert s.findings["rejection.price_positive"] == 1
    assert s.track_a_collection_rate == pytest.approx(1 / len(SYMBOLS))  # sweep S1: 1 of 10
    assert s.track_b_collection_rate is not None and 0 < s.track_b_collection_rate <= 1
    assert s.slots[0].slot_number == 1 and s.slots[0].expected >= 1


@pytest.mark.timeout(60)
def test_a_producer_abandoning_while_the_core_is_stopped_leaves_a_bus_gap_marker(short_tmp: Path) -> None:
    h = CoreHarness(short_tmp, bus_extra="send_hwm = 10\nrecv_hwm = 10", replay_buffer_bytes=4_000)
    write_universe(h.cfg, h.day, SYMBOLS)
    try:
        h.start_core()
        h.until(lambda: h.writer.events("slots_seeded"), what="core up")
        h.send(h.frame([h.tick("000001")]))
        h.until(lambda: h.collector.acked == 1, what="first frame acked")
        assert h.proc is not None
        h.proc.send_signal(signal.SIGSTOP)
        for _ in range(3_000):  # queues full, a 4 KB replay bound: frames abandoned untransmitted
            h.send(h.frame([h.tick("000001")]))
            h.poll()
        assert h.collector.abandoned > 0
        h.proc.send_signal(signal.SIGCONT)
        gaps = h.until(
            lambda: [r for r in h.writer.lines("system") if r.record_id.startswith("gap:bus:ws-test:")],
            what="a bus gap marker",
        )
        marker = msgspec.json.decode(gaps[0].line, type=GapMarker)
        assert marker.track == "bus" and marker.details["producer"] == "ws-test"
        first, last = marker.details["first_seq"], marker.details["last_seq"]
        assert isinstance(first, int) and isinstance(last, int) and first >= 2 and last - first + 1 >= 1
        assert abs((marker.start - h.now()).total_seconds()) < 60  # the session clock's time, not the wall's
    finally:
        h.stop()


@pytest.mark.timeout(90)
def test_a_collector_restart_is_marked_from_its_last_frame_even_across_a_core_crash(short_tmp: Path) -> None:
    """The ws producer dies (its run ends), the core is killed too before the new run's first frame:
    the restarted core still knows the last frame (its checkpoint) and leaves one collector_restart
    marker from it to the new run's first frame, naming every slotted symbol."""
    h = CoreHarness(short_tmp)
    write_universe(h.cfg, h.day, SYMBOLS)
    try:
        h.start_core()
        h.until(lambda: h.writer.events("slots_seeded"), what="core up")
        last = h.frame([h.tick("000001")])
        h.send(last)
        h.until(lambda: h.collector.acked == 1, what="the old run's last frame acknowledged (checkpointed)")
        old_run = h.collector.run_id
        h.collector.close()  # the producer dies
        h.kill_core()  # and the core with it
        h.start_core()
        h.collector = ReliableSender(h.ctx, h.cfg, "ws-test", *hop_endpoints(h.cfg, "ingest"))  # a new run
        first = h.frame([h.tick("000002")])
        h.send(first)
        h.send(h.frame([h.tick("000003")]))  # same new run: no second marker
        markers = h.until(
            lambda: [r for r in h.writer.lines("system") if r.record_id.startswith("gap:collector_restart:")],
            what="the collector_restart marker",
        )
        h.until(lambda: h.collector.acked == 2, what="the new run's frames archived")
        assert len({r.record_id for r in h.writer.lines("system") if "collector_restart" in r.record_id}) == 1
        marker = msgspec.json.decode(markers[0].line, type=GapMarker)
        assert marker.reason == "collector_restart" and marker.details["previous_run_id"] == old_run
        assert marker.start <= last.received_at and marker.end == first.received_at
        assert marker.details["last_frame_received_at"] == last.received_at.isoformat()
        assert set(marker.symbols) == set(SYMBOLS)  # every slotted symbol (the universe fits the slots)
    finally:
        h.stop()


@pytest.mark.timeout(60)
def test_a_42nd_surge_candidate_goes_to_the_overflow_ledger(short_tmp: Path) -> None:
    symbols = [f"{i:06d}" for i in range(200, 245)]  # 45 in the universe, 41 seeded
    h = CoreHarness(short_tmp, forwarder=True)
    write_universe(h.cfg, h.day, symbols)
    try:
        h.start_core()
        h.subscribe([SLOTS])
        h.until(lambda: h.writer.events("slots_seeded"), what="core up")
        for s in symbols:
            h.send(h.snapshot(s, "S1", volume=100_000))
        surging = symbols[3:]  # 42 surges with distinct scores; the first 3 stay quiet
        for i, s in enumerate(surging):
            h.send(h.snapshot(s, "S2", volume=100_000 + 400_000 + 10_000 * i))
        h.send(h.sweep_summary("S2", len(symbols)))  # the candidates settle who wins once it is over

        def table() -> set[str]:
            found = [b for _, b in h.events_seen if isinstance(b, SlotCommand)]
            return {a.symbol for a in found[-1].slots} if found else set()

        h.until(lambda: table() == set(surging[1:]), what="the 41 strongest surges hold the slots")
        overflow = h.until(lambda: h.writer.lines("overflow"), what="overflow entry")
        entry = msgspec.json.decode(overflow[0].line, type=OverflowEntry)
        assert entry.symbol == surging[0] and entry.rule == "volume_surge" and entry.priority == 1
        assert {msgspec.json.decode(r.line, type=OverflowEntry).symbol for r in overflow} == {surging[0]}
    finally:
        h.stop()


def _feed_status(h: CoreHarness, state: FeedState) -> FeedStatus:
    return FeedStatus(
        record_id=f"evt:ws-collector:test:{state}",
        state=state,
        severity="WARNING",
        at=h.now(),
        source="ws-collector",
        provider="kis",
        message=state,
    )


@pytest.mark.timeout(60)
def test_feed_outage_flags_samples_gap_and_a_ws_failure_pauses_scalp(core: CoreHarness) -> None:
    h = core
    h.start_core()
    last_frame = h.frame([h.tick("000001")])
    h.send(last_frame)
    _until(h, lambda: h.writer.patterns("scalp"), what="normal samples")
    assert h.writer.patterns("scalp")[0].quality.quality_flag == "normal"

    h.send(_feed_status(h, "disconnected"))
    down_at = last_frame.received_at  # the outage starts at the last frame received, not at the notice

    def flagged() -> list[str]:
        return [
            p.record_id
            for p in h.writer.patterns("scalp")
            if p.quality.quality_flag == "gap" and p.observation.instruments[0].window_start >= down_at  # type: ignore[operator]
        ]

    _until(h, flagged, what="samples flagged gap during the outage")
    for p in h.writer.patterns("scalp"):
        inst = p.observation.instruments[0]
        assert inst.window_start is not None
        if p.quality.quality_flag == "gap":
            assert inst.window_start >= down_at and inst.trade_count == 0

    h.send(_feed_status(h, "failure"))
    _until(h, lambda: h.writer.events("ws_failure"), what="the failure archived")
    paused_from = h.later(1.0)  # windows closing after the event (grace included) are not written
    resume = h.later(3.0)
    _until(h, lambda: h.now() >= resume, what="a few windows while paused")
    during = [
        p
        for p in h.writer.patterns("scalp")
        if p.observation.instruments[0].window_start >= paused_from  # type: ignore[operator]
    ]
    assert during == [], "scalp recording pauses after a ws_failure"

    h.send(h.frame([h.tick("000001")]))  # the feed is back
    back = h.later(0)

    def normal_again() -> bool:
        return any(
            p.quality.quality_flag == "normal" and p.observation.instruments[0].window_start >= back  # type: ignore[operator]
            for p in h.writer.patterns("scalp")
        )

    _until(h, normal_again, what="normal samples after the feed is back")


@pytest.mark.timeout(60)
def test_a_universe_built_after_the_core_started_is_taken_without_a_restart(short_tmp: Path) -> None:
    h = CoreHarness(short_tmp, forwarder=True)
    try:
        h.start_core()
        h.send(h.snapshot("000001", "S1"))
        _until(h, lambda: h.writer.patterns("swing"), what="a swing record without a universe")
        assert h.writer.patterns("swing")[0].quality.quality_flag == "degraded"
        write_universe(h.cfg, h.day, SYMBOLS)
        h.send(
            UniverseBuilt(
                record_id="evt:rest-collector:universe_built:kis:KOSPI:test",
                at=h.now(),
                source="rest-collector",
                provider="kis",
                market="KOSPI",
                day=h.day,
                symbols=len(SYMBOLS),
                path="universe.json",
            )
        )
        _until(h, lambda: h.writer.events("universe_loaded"), what="the universe taken")
        _until(h, lambda: h.writer.events("slot_change"), what="free slots seeded from the universe")
        h.send(h.snapshot("000002", "S2"))
        h.send(h.snapshot("777777", "S2"))  # not in the universe: rejected now
        _until(h, lambda: len(h.writer.patterns("swing")) == 2, what="the second swing record")
        _until(
            h,
            lambda: any(e.details.get("rule") == "universe" for e in h.writer.events("rejection")),
            what="rejection",
        )
        second = h.writer.patterns("swing")[1]
        assert second.record_id == "swing:000002:S2" and second.quality.quality_flag == "normal"
    finally:
        h.stop()
