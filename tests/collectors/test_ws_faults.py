"""Faults around the happy path: long failure, silent symbols, damaged frames, a rejected approval
key, a loop thread that falls behind the socket reader."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import zmq

from collectors.kis.stream import KisStream
from collectors.ws_link import Link
from collectors.ws_worker import WsCollectorWorker
from observer.clock import Clock
from observer.config import Config, Secret
from tests.collectors.ws_harness import busy_codes, running
from tests.conftest import wait_for


def test_long_failure_is_critical_and_marks_the_day_anomalous_but_never_gives_up(short_tmp: Path) -> None:
    with running(short_tmp, pause_after_failure_s=1.5) as (sim, bus, _worker, admin):
        codes = busy_codes(sim, 5)
        bus.set_slots(codes)
        wait_for(lambda: len(bus.got.records_by_symbol()) == 5, 15, what="streaming")
        admin.fault({"kind": "drop_sessions", "duration_s": 4.0})  # connections refused for 4 s
        critical = wait_for(lambda: bus.got.events_of("ws_failure"), 10, what="CRITICAL event")
        assert critical[0].severity == "CRITICAL"
        anomalous = wait_for(lambda: bus.got.events_of("day_anomalous"), 5, what="day marked anomalous")
        assert anomalous[0].details["day"] == "2026-11-26"
        wait_for(lambda: len(bus.got.gaps) == 1, 20, what="streaming again after the refusals")
        gap = bus.got.gaps[0]
        assert gap.reason.startswith("ws_outage") and "connect_failed" in gap.reason
        assert (gap.end - gap.start).total_seconds() >= 4.0
        assert len(bus.got.events_of("ws_failure")) == 1  # once per outage


def test_acknowledged_but_silent_symbol_is_reported(short_tmp: Path) -> None:
    with running(short_tmp, silent_symbol_s=1.0) as (sim, bus, worker, admin):
        codes = busy_codes(sim, 4)
        bus.set_slots(codes)
        wait_for(lambda: len(bus.got.records_by_symbol()) == 4, 15, what="streaming")
        admin.fault({"kind": "silence", "symbols": [codes[2]], "duration_s": 30.0})
        silent = wait_for(lambda: bus.got.events_of("symbol_silent"), 10, what="symbol_silent")
        assert [e.details["symbol"] for e in silent] == [codes[2]]
        assert worker.counters["silent_reports"] == 1


def test_damaged_frames_are_kept_raw_counted_and_reported(short_tmp: Path) -> None:
    with running(short_tmp, rejection_event_interval_s=0.5) as (sim, bus, worker, admin):
        codes = busy_codes(sim, 10)
        bus.set_slots(codes)
        wait_for(lambda: len(bus.got.records_by_symbol()) == 10, 15, what="streaming")
        admin.fault({"kind": "truncate", "every_n": 3, "duration_s": 1.0})
        admin.fault({"kind": "corrupt", "every_n": 5, "duration_s": 1.0})
        event = wait_for(lambda: bus.got.events_of("ws_frame_rejected"), 10, what="rejection event")
        assert event[0].details["count"] >= 1  # type: ignore[operator]
        with bus.got.lock:
            rejected = [f for f in bus.got.frames if f.parse_error]
        assert rejected and all(f.ticks == [] and f.raw for f in rejected)
        assert worker.counters["rejected"] >= len(rejected)
        wait_for(lambda: worker.link.session is not None and worker.link.session.up, 5)  # never a crash
        assert worker.counters["reconnects"] == 0


def test_rejected_approval_key_is_replaced(short_tmp: Path) -> None:
    with running(short_tmp) as (sim, bus, worker, _admin):
        codes = busy_codes(sim, 3)
        wait_for(lambda: worker.link.session is not None and worker.link.session.up, 10, what="connected")
        stream = worker.stream
        assert isinstance(stream, KisStream)
        stream.approval._key = Secret("0" * 36)  # an approval key the gateway does not know
        bus.set_slots(codes)
        wait_for(lambda: bus.got.events_of("ws_approval_invalid"), 10, what="OPSP0011 noticed")
        wait_for(lambda: len(bus.got.records_by_symbol()) == 3, 15, what="streaming with a new key")
        assert stream.approval.fetches == 2


class _StalledWorker(WsCollectorWorker):
    """The loop thread blocks in its frame handler until released: the reader must keep reading."""

    gate = threading.Event()

    def handle_frames(self, link: Link, sock: zmq.Socket[Any]) -> None:
        self.gate.wait(10)
        super().handle_frames(link, sock)


def test_a_stalled_loop_never_stalls_the_reader_and_overflow_is_a_gap(short_tmp: Path) -> None:
    def make(cfg: Config, clock: Clock) -> WsCollectorWorker:
        return _StalledWorker(cfg, clock=clock)

    _StalledWorker.gate.clear()
    with running(short_tmp, make_worker=make, frame_queue_max=20) as (sim, bus, worker, _admin):
        codes = busy_codes(sim, 41)
        bus.set_slots(codes)
        wait_for(
            lambda: worker.link.session is not None and worker.link.session.data_frames > 0,
            15,
            what="first frame",
        )
        session = worker.link.session
        assert session is not None
        wait_for(lambda: session.dropped_frames > 50, 15, what="the reader dropping, not waiting")
        assert all(s.queue.qsize() < 100 for s in sim.ws.sessions())  # the socket is read
        _StalledWorker.gate.set()
        gap = wait_for(
            lambda: [g for g in bus.got.gaps if g.reason == "collector_queue_overflow"],
            10,
            what="overflow gap",
        )
        assert gap[0].details["frames"] >= 1  # type: ignore[operator]
        assert gap[0].start <= gap[0].end
        wait_for(lambda: worker.counters["dropped_frames"] == session.dropped_frames, 10)
