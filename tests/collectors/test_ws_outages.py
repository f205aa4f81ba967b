"""Outages against the simulator: session drops, a black hole, a second session holding the key."""

from __future__ import annotations

import itertools
from datetime import datetime
from pathlib import Path

import requests
import websocket

from collectors.kis.subscriptions import SUBSCRIBE, Request, request_text
from collectors.kis_sim.schema import FaultWindow
from collectors.kis_sim.server import Simulator
from collectors.ws_worker import WsCollectorWorker
from observer.config import Secret, SimConfig
from observer.schema import GapMarker
from tests.collectors.ws_harness import Admin, Bus, SessionMonitor, busy_codes, running, stamp_at
from tests.conftest import wait_for


def streaming_since(bus: Bus, codes: list[str], since: datetime) -> bool:
    with bus.got.lock:
        seen = {t.symbol for f in bus.got.frames if f.received_at > since for t in f.ticks}
    return seen >= set(codes)


def outage_gaps(bus: Bus) -> list[GapMarker]:
    with bus.got.lock:
        return [g for g in bus.got.gaps if g.reason.startswith("ws_outage")]


def inject(
    sim: Simulator,
    bus: Bus,
    worker: WsCollectorWorker,
    admin: Admin,
    codes: list[str],
    kind: str,
    duration_s: float,
    number: int,
) -> FaultWindow:
    """Wait until the collector is healthy, open a fault window, wait for its gap marker and for
    every slot to stream again."""
    healthy_from = sim.clock.now()
    wait_for(lambda: worker.link.backoff.failures == 0 and sim.clock.now() > healthy_from, 10, what="healthy")
    window = admin.fault({"kind": kind, "duration_s": duration_s})
    end = stamp_at((window.planned_end or window.start).virtual)
    wait_for(lambda: len(outage_gaps(bus)) == number, 30, what=f"gap marker {number}")
    wait_for(lambda: streaming_since(bus, codes, end), 10, what="all slots streaming again")
    return window


def test_drops_and_a_black_hole_each_leave_one_accurate_gap_marker(short_tmp: Path) -> None:
    with (
        running(short_tmp, receive_watchdog_s=4.0, healthy_reset_s=2.0, ack_timeout_s=1.0) as (
            sim,
            bus,
            worker,
            admin,
        ),
        SessionMonitor(sim) as monitor,
    ):
        codes = busy_codes(sim)
        bus.set_slots(codes)
        wait_for(
            lambda: streaming_since(bus, codes, sim.clock.now().replace(year=2000)), 15, what="streaming"
        )
        windows = [
            inject(sim, bus, worker, admin, codes, kind, duration_s, number)
            for number, (kind, duration_s) in enumerate(
                [("drop_sessions", 0.0), ("drop_sessions", 0.0), ("drop_sessions", 0.0), ("blackhole", 10.0)],
                1,
            )
        ]
        gaps = outage_gaps(bus)
        assert len(gaps) == 4
        for gap, window in zip(gaps, windows, strict=True):
            start = stamp_at(window.start.virtual)
            end = stamp_at((window.end or window.planned_end or window.start).virtual)
            assert abs((gap.start - start).total_seconds()) <= 2.0, (gap, window)
            assert abs((gap.end - end).total_seconds()) <= 2.0, (gap, window)
            assert gap.track == "scalp" and sorted(gap.symbols) == sorted(codes)
        assert "receive_watchdog" in gaps[3].reason
        assert monitor.max_sessions == 1
        assert monitor.max_registrations <= 41
        assert worker.subs.peak_registrations <= 41
        sessions = sorted(admin.truth().sessions, key=lambda s: s.opened.real)
        for before, after in itertools.pairwise(sessions):
            assert before.closed is not None and stamp_at(before.closed.real) <= stamp_at(after.opened.real)
        assert worker.counters["reconnects"] >= 4


def test_session_in_use_backs_off_long_then_streams(short_tmp: Path) -> None:
    with running(short_tmp, session_in_use_backoff_s=3.0) as (sim, bus, worker, admin):
        codes = busy_codes(sim, 5)
        # someone else holds the app key's one session
        resp = requests.post(
            f"http://127.0.0.1:{sim.rest_port}/oauth2/Approval",
            json={
                "grant_type": "client_credentials",
                "appkey": SimConfig().app_key,
                "secretkey": SimConfig().app_secret,
            },
            timeout=5,
        )
        key = resp.json()["approval_key"]
        other = websocket.create_connection(f"ws://127.0.0.1:{sim.ws_port}/tryitout", timeout=5)
        try:
            other.send(request_text(Secret(key), "H0STCNT0", Request(SUBSCRIBE, codes[0])))
            assert "OPSP0000" in other.recv()
            bus.set_slots(codes)
            wait_for(lambda: bus.got.events_of("ws_session_in_use"), 15, what="OPSP8996 noticed")
            refused_at = sim.clock.now()
        finally:
            other.close()
        wait_for(lambda: streaming_since(bus, codes, refused_at), 20, what="streaming after the holder left")
        sessions = sorted(admin.truth().sessions, key=lambda s: s.opened.real)
        refused = [s for s in sessions if s.close_reason == "appkey_in_use"]
        assert len(refused) == 1 and refused[0].closed is not None
        refused_closed = stamp_at(refused[0].closed.real)
        after = [s for s in sessions if stamp_at(s.opened.real) > refused_closed]
        assert after, "the collector came back"
        assert (stamp_at(after[0].opened.real) - refused_closed).total_seconds() >= 2.5  # the long backoff
        assert worker.counters["session_in_use"] == 1
