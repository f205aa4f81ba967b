"""Two trading days in a row on an injected clock: the session closes after the window's end and
opens again at its start the next trading day, without a restart. (The window is 09:00-09:05 here
instead of 09:30-15:00 so that the simulator has little of its day to compute; same code path.)"""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path

from collectors.ws_states import LinkState
from observer.clock import KST, ManualClock
from tests.collectors.ws_harness import busy_codes, prime, running
from tests.conftest import wait_for


class Ticking:
    """Moves a ManualClock forward with real time (so the simulated market trades), and jumps."""

    def __init__(self, clock: ManualClock):
        self.clock = clock
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            with self._lock:
                self.clock.advance(0.02)

    def jump(self, to: datetime) -> None:
        with self._lock:
            self.clock.set(to)

    def __enter__(self) -> Ticking:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def test_stops_after_the_close_and_streams_again_next_trading_day(short_tmp: Path) -> None:
    day1 = datetime(2026, 11, 26, 9, 4, 50, tzinfo=KST)  # Thursday
    day2_open = datetime(2026, 11, 27, 9, 0, 0, tzinfo=KST)  # Friday
    clock = ManualClock(day1)
    with Ticking(clock) as ticking, running(short_tmp, clock=clock, end="09:05") as (sim, bus, worker, _):
        codes = busy_codes(sim, 10)
        bus.set_slots(codes)
        wait_for(lambda: len(bus.got.records_by_symbol()) == 10, 15, what="day 1 streaming")
        ticking.jump(datetime(2026, 11, 26, 9, 5, 0, 500_000, tzinfo=KST))
        wait_for(lambda: not sim.ws.sessions(), 10, what="session closed after the window's end")
        assert worker.link.session is None and worker.link.state is LinkState.CLOSED
        frames_at_close = len(bus.got.frames)
        ticking.jump(datetime(2026, 11, 27, 8, 59, 58, tzinfo=KST))
        prime(sim, codes)
        wait_for(lambda: worker.clock.now() > datetime(2026, 11, 27, 8, 59, 59, tzinfo=KST), 5)
        assert not sim.ws.sessions() and worker.link.session is None  # not before the window opens
        ticking.jump(day2_open)
        wait_for(
            lambda: {t.symbol for f in bus.got.frames[frames_at_close:] for t in f.ticks} == set(codes),
            15,
            what="day 2 streaming",
        )
        day2 = [f for f in bus.got.frames[frames_at_close:]]
        assert all(t.exchange_at.date() == day2_open.date() for f in day2 for t in f.ticks)
        assert all(f.received_at >= day2_open for f in day2)
        assert bus.got.gaps == []  # the night is not an outage
        assert worker.counters["reconnects"] == 0 and worker.counters["sessions_opened"] == 2
        windows = [e.message for e in bus.got.events_of("ws_session_window")]
        assert windows == [
            "trading session window opened",
            "trading session window closed",
            "trading session window opened",
        ]
