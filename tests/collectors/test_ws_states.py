"""The WS collector's connection lifecycle: the transition table, and `Link` walking it.

The walk drives a real `Link` (real sessions, reporter, outage tracker, backoff) on a ManualClock
with a scripted in-process stream: the provider's side is played by the test so that every
transition can be reached on demand; the real stream against the simulator is in test_ws_*.py.
"""

from __future__ import annotations

import collections
import itertools
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from collectors.providers import ControlOutcome, SessionDown, SessionUp, SessionWiring
from collectors.ws_link import Link
from collectors.ws_report import COUNTERS, WsReporter
from collectors.ws_states import (
    IN_WINDOW,
    TRANSITIONS,
    WITH_SESSION,
    IllegalTransition,
    LinkState,
    check_transition,
)
from observer.clock import KST, ManualClock
from observer.schema import DayAnomalous, FeedStatus, SystemEvent
from observer.sessions import MarketSessions
from testkit.config import make_config

S = LinkState
MONDAY_0900 = datetime(2026, 3, 16, 9, 0, tzinfo=KST)


def test_every_state_has_a_row_and_stopped_is_final() -> None:
    assert set(TRANSITIONS) == set(LinkState)
    assert TRANSITIONS[S.STOPPED] == frozenset()
    assert all(S.STOPPED in TRANSITIONS[s] for s in LinkState if s is not S.STOPPED)
    # only a session that is connecting comes up; nothing connects outside the window
    assert [s for s in LinkState if S.UP in TRANSITIONS[s]] == [S.CONNECTING]
    assert [s for s in LinkState if S.CONNECTING in TRANSITIONS[s]] == [S.WAITING]
    assert {S.WAITING, S.CONNECTING, S.UP} == IN_WINDOW and {S.CONNECTING, S.UP} == WITH_SESSION


@pytest.mark.parametrize("old,new", list(itertools.product(LinkState, LinkState)))
def test_illegal_transitions_raise(old: LinkState, new: LinkState) -> None:
    if new in TRANSITIONS[old]:
        check_transition(old, new)
    else:
        with pytest.raises(IllegalTransition, match=f"{old.value} -> {new.value}"):
            check_transition(old, new)


class ScriptedSession:
    """A session whose reader thread is the test: it reports up/down through the real wiring."""

    def __init__(self, session_id: int, wiring: SessionWiring):
        self.session_id = session_id
        self.wiring = wiring
        self.frames = self.data_frames = self.dropped_frames = 0
        self.control: collections.deque[tuple[int, bytes]] = collections.deque()
        self.up = False
        self.started = self.closed = False
        self.sent: list[str] = []

    def start(self) -> None:
        self.started = True

    def send_text(self, text: str) -> bool:
        self.sent.append(text)
        return self.up

    def close(self) -> None:
        self.closed = True

    def join(self, timeout_s: float) -> bool:
        return self.closed or not self.up

    # -- what the reader thread would do
    def report_up(self) -> None:
        self.up = True
        self.wiring.status.put(SessionUp(self.session_id, self.wiring.now_ns()))

    def report_down(self, reason: str) -> None:
        self.up = False
        self.wiring.status.put(SessionDown(self.session_id, self.wiring.now_ns(), reason, was_up=True))


class ScriptedSubscriptions:
    def __init__(self) -> None:
        self.peak_registrations = 0
        self._desired: list[str] = []
        self.registered: list[str] = []

    def set_desired(self, symbols: Any) -> None:
        self._desired = list(symbols)

    def reset(self) -> None:
        self.registered = []

    def note_data(self, symbol: str, now: float) -> None:
        pass

    def silent_symbols(self, now: float) -> list[str]:
        return []

    @property
    def desired(self) -> list[str]:
        return list(self._desired)

    @property
    def held(self) -> int:
        return len(self.registered)


class ScriptedStream:
    name = "scripted"
    url = "ws://scripted"

    def __init__(self) -> None:
        self.subscriptions = ScriptedSubscriptions()
        self.sessions: list[ScriptedSession] = []
        self.outcomes: dict[bytes, ControlOutcome] = {}
        self.invalidated = 0

    def open_session(self, session_id: int, wiring: SessionWiring) -> ScriptedSession:
        self.sessions.append(ScriptedSession(session_id, wiring))
        return self.sessions[-1]

    def request_texts(self, now: float) -> list[str]:
        return [
            f"subscribe {s}" for s in self.subscriptions.desired if s not in self.subscriptions.registered
        ]

    def parse_data(self, text: str, received_at: datetime) -> Any:
        raise AssertionError("no data frames in these tests")

    def on_control(self, data: bytes, now: float) -> ControlOutcome:
        return self.outcomes.get(data, ControlOutcome("invalid", message="unknown"))

    def invalidate_credentials(self) -> None:
        self.invalidated += 1

    def close(self) -> None:
        pass


class Rig:
    def __init__(self, base: Path):
        self.cfg = make_config(
            base,
            '[track_b]\nstart = "09:00"\nend = "15:30"\nsession_margin_s = 0\nreconnect_backoff_s = [1.0]\n',
        )
        self.clock = ManualClock(MONDAY_0900.replace(hour=8, minute=59))
        self.mono = 1000.0
        self.stream = ScriptedStream()
        self.events: list[SystemEvent] = []
        self.counters = dict.fromkeys(COUNTERS, 0)

        ids = iter(range(1_000_000))

        log = logging.getLogger("test.ws_link")
        report = WsReporter(
            "ws-collector",
            "run",
            "kis",
            "KRX",
            clock=self.clock,
            next_event_id=lambda: f"e{next(ids)}",
            send=self._sent,
            publish=lambda topic, event: None,
            log=log,
            rejection_interval_s=60.0,
        )
        self.link = Link(
            self.cfg.track_b,
            self.stream,  # type: ignore[arg-type]
            MarketSessions.from_config(self.cfg),
            report,
            self.counters,
            self.clock,
            lambda: int(self.clock.now().timestamp() * 1e9),
            log,
        )
        self.link.wiring = SessionWiring(
            ctx=None,  # type: ignore[arg-type]  # the scripted sessions open no socket
            frames_endpoint="inproc://unused",
            frames_hwm=1,
            now_ns=lambda: int(self.clock.now().timestamp() * 1e9),
            status=self.link.status,
            overflow=self.link.overflow,
            connect_timeout_s=1.0,
        )
        self.seen: list[LinkState] = [self.link.state]

    def _sent(self, msg: object) -> None:
        match msg:
            case SystemEvent():
                self.events.append(msg)
            case FeedStatus() | DayAnomalous():  # as the core archives them
                self.events.append(msg.event())

    def tick(self, advance_s: float = 0.0) -> LinkState:
        self.clock.advance(advance_s)
        self.mono += advance_s
        self.link.tick(self.mono)
        if self.link.state is not self.seen[-1]:
            self.seen.append(self.link.state)
        return self.link.state

    def session(self) -> ScriptedSession:
        return self.stream.sessions[-1]

    def up_at_the_open(self) -> ScriptedSession:
        """Open the window (09:00) and bring the first session up."""
        self.tick(60)
        self.session().report_up()
        assert self.tick() is S.UP
        return self.session()

    def answer(self, data: bytes, outcome: ControlOutcome) -> LinkState:
        """The session receives control frame `data`, which the stream reads as `outcome`."""
        self.stream.outcomes[data] = outcome
        self.session().control.append((0, data))
        return self.tick()

    def types(self) -> list[str]:
        return [e.type for e in self.events]


def test_a_day_walks_the_table(short_tmp: Path) -> None:
    rig = Rig(short_tmp)
    assert rig.tick() is S.CLOSED and not rig.stream.sessions  # nothing before the window
    assert rig.tick(60) is S.CONNECTING  # 09:00: the window opens and the first session starts
    assert rig.session().started
    rig.stream.subscriptions.set_desired(["005930"])
    rig.session().report_up()
    assert rig.tick() is S.UP and rig.session().sent == ["subscribe 005930"]
    assert rig.counters["sessions_opened"] == 1 and rig.counters["reconnects"] == 0

    first = rig.session()
    first.report_down("closed_by_server")
    assert rig.tick() is S.WAITING  # lost: an outage starts, a retry is scheduled
    assert rig.link.outages.current is not None and "ws_disconnected" in rig.types()
    assert rig.tick(0.5) is S.WAITING  # the backoff has not elapsed
    assert rig.tick(0.6) is S.CONNECTING and rig.session() is not first
    rig.session().report_up()
    assert rig.tick() is S.UP and rig.counters["reconnects"] == 1

    rig.clock.set(MONDAY_0900.replace(hour=15, minute=30))
    assert rig.tick() is S.CLOSED and rig.session().closed  # the window closed: ended on purpose
    assert rig.types().count("ws_session_window") == 2
    assert rig.seen == [S.CLOSED, S.CONNECTING, S.UP, S.WAITING, S.CONNECTING, S.UP, S.CLOSED]
    rig.link.stop()
    assert rig.link.state is S.STOPPED


def test_an_ack_that_says_session_in_use_drops_the_session_and_waits_longer(short_tmp: Path) -> None:
    rig = Rig(short_tmp)
    session = rig.up_at_the_open()
    assert rig.answer(b"in-use", ControlOutcome("session_in_use", code="OPSP8996")) is S.WAITING
    assert session.closed
    assert rig.counters["session_in_use"] == 1
    assert rig.tick(rig.cfg.track_b.session_in_use_backoff_s - 0.5) is S.WAITING
    assert rig.tick(1.0) is S.CONNECTING


def test_a_rejected_key_is_invalidated_before_the_next_session(short_tmp: Path) -> None:
    rig = Rig(short_tmp)
    rig.up_at_the_open()
    assert rig.answer(b"bad-key", ControlOutcome("invalid_key", code="OPSP0011")) is S.WAITING
    assert rig.stream.invalidated == 1
    assert "ws_approval_invalid" in rig.types()


def test_a_session_that_never_comes_up_is_retried(short_tmp: Path) -> None:
    rig = Rig(short_tmp)
    assert rig.tick(60) is S.CONNECTING
    session = rig.session()
    session.wiring.status.put(SessionDown(session.session_id, 0, "connect_failed", "refused"))
    assert rig.tick() is S.WAITING and rig.counters["session_failures"] == 1
    assert rig.tick(1.1) is S.CONNECTING and len(rig.stream.sessions) == 2
