"""Test-side pieces around a real ws-collector: the simulator, the ingest hop's receiving end,
the event bus (forwarder + a slot-table publisher + a stats listener), and a worker thread."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import requests
import zmq

from collectors.kis_sim.schema import FaultWindow, Truth
from collectors.kis_sim.server import SimOptions, Simulator
from collectors.ws_worker import WsCollectorWorker
from observer.bus import (
    SLOTS,
    EventPublisher,
    EventSubscriber,
    Forwarder,
    context,
    ingest_decoder,
    stats_topic,
    system_topic,
)
from observer.clock import KST, Clock, SessionClock
from observer.config import Config
from observer.reliable import ReliableReceiver, hop_endpoints
from observer.schema import (
    DayAnomalous,
    FeedStatus,
    GapMarker,
    SlotAssignment,
    SlotCommand,
    SystemEvent,
    TradeFrame,
    WsCollectorStats,
)
from testkit.config import make_config

# A Thursday just after the simulator's open. The tests open Track B's window at 09:00 (it is
# configuration) so the simulator has little of the day to catch up on when a symbol is primed.
SESSION_START = datetime(2026, 11, 26, 9, 0, 5, tzinfo=KST)
_truth_decoder = msgspec.json.Decoder(Truth)
_window_decoder = msgspec.json.Decoder(FaultWindow)


def start_simulator(clock: Clock, symbol_count: int = 300) -> Simulator:
    return Simulator(SimOptions(symbol_count=symbol_count, weekends_closed=False), clock).start()


def busy_codes(sim: Simulator, n: int = 41) -> list[str]:
    codes = [x.code for x in sim.market.listings if x.activity == "busy"]
    assert len(codes) >= n
    prime(sim, codes[:n])
    return codes[:n]


def prime(sim: Simulator, codes: list[str]) -> None:
    """Advance `codes` to now before anyone watches them. Works around a simulator quirk: a symbol
    first looked at *by* `Market.watch` publishes its whole day so far as one burst (the watch
    count is raised before the state is created, so the creation starts retaining trades)."""
    sim.market.quotes(codes)


def config_for(base: Path, sim: Simulator, **track_b: Any) -> Config:
    values: dict[str, Any] = {"start": "09:00", "end": "15:00", "stats_interval_s": 0.2} | track_b
    return make_config(
        base, sim={"enabled": True, "rest_port": sim.rest_port, "ws_port": sim.ws_port}, track_b=values
    )


class Admin:
    """The simulator's admin endpoint, over real HTTP."""

    def __init__(self, sim: Simulator):
        self.base = f"http://127.0.0.1:{sim.admin_port}/admin"

    def truth(self) -> Truth:
        return _truth_decoder.decode(requests.get(f"{self.base}/truth", timeout=5).content)

    def fault(self, spec: dict[str, Any]) -> FaultWindow:
        resp = requests.post(f"{self.base}/faults", json=spec, timeout=5)
        resp.raise_for_status()
        return _window_decoder.decode(resp.content)


@dataclass
class Collected:
    frames: list[TradeFrame] = field(default_factory=list)
    gaps: list[GapMarker] = field(default_factory=list)
    events: list[SystemEvent] = field(default_factory=list)
    stats: list[WsCollectorStats] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def records_by_symbol(self) -> Counter[str]:
        with self.lock:
            return Counter(t.symbol for f in self.frames for t in f.ticks)

    def latest_stats(self) -> WsCollectorStats | None:
        with self.lock:
            return self.stats[-1] if self.stats else None

    def events_of(self, type_: str) -> list[SystemEvent]:
        with self.lock:
            return [e for e in self.events if e.type == type_]


class Bus:
    """Forwarder, the ingest receiver (acks everything it gets), a slot publisher, a stats listener.
    Every socket lives on the one thread that uses it."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.ctx = context()
        self.forwarder = Forwarder(self.ctx, cfg)
        self.got = Collected()
        self._slots: list[str] | None = None
        self._version = 0
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-bus", daemon=True)

    def start(self) -> Bus:
        self.forwarder.start()
        self._thread.start()
        assert self._ready.wait(5)
        return self

    def set_slots(self, symbols: list[str]) -> None:
        """The desired table, re-published every 0.2 s (as the core does every few seconds)."""
        self._version += 1
        self._slots = list(symbols)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.forwarder.stop()

    def _run(self) -> None:
        data_ep, ack_ep = hop_endpoints(self.cfg, "ingest")
        receiver = ReliableReceiver(self.ctx, self.cfg, "core", data_ep, ack_ep)
        pub = EventPublisher(self.ctx, self.cfg)
        sub = EventSubscriber(self.ctx, self.cfg, [stats_topic("ws-collector"), system_topic("ws-collector")])
        poller = zmq.Poller()
        poller.register(receiver.pull, zmq.POLLIN)
        poller.register(sub.sock, zmq.POLLIN)
        self._ready.set()
        last_pub = 0.0
        try:
            while not self._stop.is_set():
                poller.poll(20)
                for env in receiver.receive():
                    body = ingest_decoder.decode(env.body)
                    with self.got.lock:
                        match body:
                            case TradeFrame():
                                self.got.frames.append(body)
                            case GapMarker():
                                self.got.gaps.append(body)
                            case SystemEvent():
                                self.got.events.append(body)
                            case FeedStatus() | DayAnomalous():  # as the core archives them
                                self.got.events.append(body.event())
                    receiver.ack(env.producer, env.run_id, env.seq)
                receiver.republish_acks()
                while (ev := sub.recv_nowait()) is not None:
                    if isinstance(ev[1], WsCollectorStats):
                        with self.got.lock:
                            self.got.stats.append(ev[1])
                now = time.monotonic()
                if self._slots is not None and now - last_pub >= 0.2:
                    last_pub = now
                    slots = [
                        SlotAssignment(slot_number=i + 1, symbol=s, rule="manual", since=SESSION_START)
                        for i, s in enumerate(self._slots)
                    ]
                    pub.publish(SLOTS, SlotCommand(version=self._version, at=SESSION_START, slots=slots))
        finally:
            receiver.close()
            pub.close()
            sub.close()


class WorkerThread:
    """Runs a worker's start/loop/stop on a thread (signal handlers only exist on the main thread)."""

    def __init__(self, worker: WsCollectorWorker):
        self.worker = worker
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="ws-collector", daemon=True)

    def _run(self) -> None:
        w = self.worker
        w.ctx = context()
        w.events = EventPublisher(w.ctx, w.cfg)
        w.started_at = w.clock.now()
        try:
            w.on_start()
            w._loop()
        except BaseException as e:  # surfaced by stop()
            self.error = e
        finally:
            try:
                w.on_stop()
            finally:
                w.events.close()

    def start(self) -> WorkerThread:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.worker.request_stop()
        self._thread.join(10)
        assert not self._thread.is_alive(), "worker did not stop"
        if self.error is not None:
            raise self.error


@contextmanager
def running(
    base: Path,
    *,
    clock: Clock | None = None,
    worker_clock: Clock | None = None,
    make_worker: Callable[[Config, Clock], WsCollectorWorker] | None = None,
    **track_b: Any,
) -> Iterator[tuple[Simulator, Bus, WsCollectorWorker, Admin]]:
    """A simulator, the bus and a ws-collector (in a thread), torn down in order."""
    sim_clock = clock or SessionClock(SESSION_START, 1.0)
    sim = start_simulator(sim_clock)
    try:
        cfg = config_for(base, sim, **track_b)
        bus = Bus(cfg).start()
        try:
            wclock = worker_clock or sim_clock
            worker = make_worker(cfg, wclock) if make_worker else WsCollectorWorker(cfg, clock=wclock)
            thread = WorkerThread(worker).start()
            try:
                yield sim, bus, worker, Admin(sim)
            finally:
                thread.stop()
        finally:
            bus.stop()
    finally:
        sim.stop()


class SessionMonitor:
    """Samples the simulator every few ms: the most sessions live at once, the most registrations
    any one session held."""

    def __init__(self, sim: Simulator):
        self.sim = sim
        self.max_sessions = 0
        self.max_registrations = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="session-monitor", daemon=True)

    def __enter__(self) -> SessionMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            sessions = self.sim.ws.sessions()
            bound = [s for s in sessions if s.app_key is not None]
            self.max_sessions = max(self.max_sessions, len(bound))
            for s in sessions:
                self.max_registrations = max(self.max_registrations, len(s.subs))


def stamp_at(text: str) -> datetime:
    return datetime.fromisoformat(text)
