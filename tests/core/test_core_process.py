"""The core as a real process on real sockets: routing, rejections, acks, slots."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from observer.schema import Command, MitigationLevel, SlotCommand, SystemEvent
from tests.conftest import wait_for
from tests.core.harness import CoreHarness, write_universe

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
    scalp_symbols = {p.observation.instruments[0].symbol for p in h.writer.patterns("scalp")}
    assert scalp_symbols == {"000001"}
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
    h.subscribe(["slots"])
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
        h.publish("mitigation", MitigationLevel(level=2, at=h.now()))  # idempotent; PUB joins late
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
    h.subscribe(["slots"])

    def table() -> SlotCommand | None:
        found = [b for _, b in h.events_seen if isinstance(b, SlotCommand)]
        return found[-1] if found else None

    _until(h, lambda: table() is not None and len(table().slots) == len(SYMBOLS), what="seeded table")  # type: ignore[union-attr]

    def pinned() -> bool:
        h.publish("ctl.observer", Command(action="pin", target="000007"))  # idempotent; PUB joins late
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
