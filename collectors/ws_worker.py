"""The Track B collector worker (``ws-collector``): real-time trades onto the ingest hop.

Data flow::

    SlotCommand (event topic "slots") -> stream.subscriptions (desired <= ``track_b.max_slots``)
                                              | subscribe / unsubscribe frames (ws_link)
    provider WebSocket -> session reader thread  v
        stamps receive time -> inproc PUSH (bounded) -> loop thread: stream.parse_data -> TradeFrame
        -> ReliableSender (ingest hop, from this thread only) -> core

The provider is reached only through `collectors.providers.IRealtimeStream` (``build_stream``).
The connection lifecycle — the trading-session window, one session at a time, reconnect backoff,
receive watchdog, outages and their escalation — is `ws_link.Link`, whose states and transitions
are the table in `ws_states`. Here: the sockets, the hot path (one outage gap marker when data
flows again), slot commands, reader overflow as gap markers, and `WsCollectorStats` on
``stats.ws-collector``. Events and gap markers are worded by `ws_report.WsReporter`.

System events and gap markers go on the ingest hop (archived under ``system/``); system events are
also published on the event topic ``system.ws-collector`` for live listeners (the slot manager).
"""

from __future__ import annotations

import queue
import time
from typing import Any

import msgspec
import zmq

from collectors.providers import IRealtimeStream, SessionWiring, build_stream, unpack_frame
from collectors.ws_link import Link
from collectors.ws_report import COUNTERS, WsReporter
from collectors.ws_states import IN_WINDOW, LinkState
from observer.bus import SLOTS, EventSubscriber, stats_topic
from observer.clock import Clock, SystemClock, datetime_to_ns, ns_to_datetime
from observer.config import Config, Secrets
from observer.reliable import ReliableSender, hop_endpoints
from observer.schema import SlotCommand, SystemEvent, TradeFrame, WsCollectorStats
from observer.sessions import MarketSessions
from observer.worker_base import Worker

MARKET = "KRX"
_DRAIN_MAX = 2_000  # frames per handler call, so the loop still ticks under load


class WsCollectorWorker(Worker):
    """See the module docstring."""

    name = "ws-collector"
    tick_interval_s = 0.05

    def __init__(
        self,
        cfg: Config,
        *,
        clock: Clock | None = None,
        secrets: Secrets | None = None,
        sessions: MarketSessions | None = None,
        stream: IRealtimeStream | None = None,
    ):
        super().__init__(cfg, clock=clock, secrets=secrets)
        self.tb = cfg.track_b
        self.stream = stream or build_stream(cfg, self.secrets)
        self.report = WsReporter(
            self.name,
            self.run_id,
            cfg.archive_provider,
            MARKET,
            clock=self.clock,
            next_event_id=self.next_event_id,
            send=self._send,
            publish=self._publish,
            log=self.log,
            rejection_interval_s=self.tb.rejection_event_interval_s,
        )
        self._now_ns = time.time_ns if isinstance(self.clock, SystemClock) else self._clock_ns
        # counters (names in `ws_report.COUNTERS`)
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.link = Link(
            self.tb,
            self.stream,
            sessions or MarketSessions.from_config(cfg),
            self.report,
            self.counters,
            self.clock,
            self._now_ns,
            self.log,
        )
        self.subs = self.stream.subscriptions
        self._last_stats_mono = 0.0
        self.sender: ReliableSender | None = None
        self.slot_events: EventSubscriber | None = None
        self._frames_sock: zmq.Socket[Any] | None = None
        self._frames_endpoint = f"inproc://ws-frames-{self.run_id}"

    def _clock_ns(self) -> int:
        return datetime_to_ns(self.clock.now())

    def _send(self, msg: msgspec.Struct) -> None:
        if self.sender is not None:
            self.sender.send(msg)

    def _publish(self, topic: str, event: SystemEvent) -> None:
        if self.events is not None:
            self.events.publish(topic, event)

    # ------------------------------------------------------------------ lifecycle
    def on_start(self) -> None:
        assert self.ctx is not None
        self._frames_sock = self.ctx.socket(zmq.PULL)
        self._frames_sock.setsockopt(zmq.LINGER, 0)
        self._frames_sock.setsockopt(zmq.RCVHWM, self.tb.frame_queue_max)
        self._frames_sock.bind(self._frames_endpoint)
        self.register(self._frames_sock, self.handle_frames)
        self.link.wiring = SessionWiring(
            ctx=self.ctx,
            frames_endpoint=self._frames_endpoint,
            frames_hwm=self.tb.frame_queue_max,
            now_ns=self._now_ns,
            status=self.link.status,
            overflow=self.link.overflow,
            connect_timeout_s=self.tb.connect_timeout_s,
        )
        data_ep, ack_ep = hop_endpoints(self.cfg, "ingest")
        self.sender = ReliableSender(
            self.ctx, self.cfg, self.name, data_ep, ack_ep, run_id=self.run_id, on_gap=self.report.seq_gap
        )
        self.register(self.sender.ack_sub, self.sender.handle_acks)
        self.slot_events = EventSubscriber(self.ctx, self.cfg, [SLOTS])
        self.register(self.slot_events.sock, self.handle_slots)

    def on_tick(self) -> None:
        now_mono = time.monotonic()
        self.link.tick(now_mono)
        self._drain_overflow()
        self.report.flush_rejections(now_mono)
        if self.sender is not None:
            self.sender.pump()
        if now_mono - self._last_stats_mono >= self.tb.stats_interval_s:
            self._last_stats_mono = now_mono
            self._publish_stats()

    def on_stop(self) -> None:
        self.link.stop()
        if self.sender is not None and self._frames_sock is not None:
            # frames the reader took off the socket before the session ended are archived, not
            # dropped with the queue (found by the chaos soak: trades of the last milliseconds lost)
            while self._frames_sock.poll(0):
                self.handle_frames()
        if self.sender is not None:
            self.sender.wait_all_acked(2.0)
            self.sender.close()
        if self.slot_events is not None:
            self.slot_events.close()
        if self._frames_sock is not None:
            self._frames_sock.close(linger=0)
        self.stream.close()

    # ------------------------------------------------------------------ the hot path
    def handle_frames(self) -> None:
        sock = self._frames_sock
        assert sock is not None
        for _ in range(_DRAIN_MAX):
            try:
                msg = sock.recv(flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            at_ns, data = unpack_frame(msg.buffer)
            self.handle_data_frame(at_ns, data)

    def handle_data_frame(self, at_ns: int, data: bytes) -> None:
        assert self.sender is not None
        now_mono = time.monotonic()
        text = data.decode("utf-8", "replace")
        received_at = ns_to_datetime(at_ns)
        parsed = self.stream.parse_data(text, received_at)
        self.counters["frames"] += 1
        link = self.link
        link.last_any_mono = now_mono
        ended = link.outages.frame(at_ns)
        if ended is not None:
            link.outage_gap(ended, at_ns)
        if parsed.error:
            self.counters["rejected"] += 1
            self.report.rejected(parsed.error)
        else:
            self.counters["ticks"] += len(parsed.ticks)
            for tick in parsed.ticks:
                self.subs.note_data(tick.symbol, now_mono)
        self.sender.send(
            TradeFrame(
                provider=self.cfg.archive_provider,
                market=MARKET,
                received_at=received_at,
                raw=text,
                tr_id=parsed.tr_id,
                ticks=parsed.ticks,
                parse_error=parsed.error,
            )
        )

    # ------------------------------------------------------------------ slots
    def handle_slots(self) -> None:
        assert self.slot_events is not None
        while (got := self.slot_events.recv_nowait()) is not None:
            match got[1]:
                case SlotCommand(slots=slots, paused=paused):
                    self.counters["slot_commands"] += 1
                    ordered = sorted(slots, key=lambda a: a.slot_number)
                    self.subs.set_desired([] if paused else [a.symbol for a in ordered])
                case _:
                    pass

    # ------------------------------------------------------------------ reader overflow
    def _drain_overflow(self) -> None:
        while True:
            try:
                ep = self.link.overflow.get_nowait()
            except queue.Empty:
                return
            self.counters["dropped_frames"] += ep.frames
            self.counters["overflow_gaps"] += 1
            self.report.gap(
                self.subs.registered, ep.first_ns, ep.last_ns, "collector_queue_overflow", frames=ep.frames
            )

    # ------------------------------------------------------------------ stats
    def stats(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.counters.items()} | self._gauges()

    def _gauges(self) -> dict[str, float]:
        link, subs = self.link, self.link.subs
        connected = link.state is LinkState.UP
        last = link.outages.last_frame_ns
        age = (self._now_ns() - last) / 1e9 if last is not None else -1.0
        return {
            "connected": 1.0 if connected else 0.0,
            "subscribed": float(len(subs.registered)) if connected else 0.0,
            "held": float(subs.held) if connected else 0.0,
            "desired": float(len(subs.desired)),
            "peak_registrations": float(subs.peak_registrations),
            "last_frame_age_s": age,
            "in_session": 1.0 if link.state in IN_WINDOW else 0.0,
            "failing_s": link.outages.failing_for(time.monotonic()),
            "unacked": float(self.sender.unacked) if self.sender is not None else 0.0,
        }

    def _publish_stats(self) -> None:
        if self.events is None:
            return
        link, subs, session, sender = self.link, self.link.subs, self.link.session, self.sender
        connected = link.state is LinkState.UP
        last = link.outages.last_frame_ns
        self.events.publish(
            stats_topic(self.name),
            WsCollectorStats(
                worker=self.name,
                at=self.clock.now(),
                **self.counters,  # the COUNTERS fields
                session_dropped_frames=session.dropped_frames if session is not None else 0,
                ingest_resent=sender.resent if sender is not None else 0,
                ingest_resend_rounds=sender.resend_rounds if sender is not None else 0,
                ingest_abandoned=sender.abandoned if sender is not None else 0,
                connected=connected,
                subscribed=len(subs.registered) if connected else 0,
                held=subs.held if connected else 0,
                desired=len(subs.desired),
                peak_registrations=subs.peak_registrations,
                last_frame_age_s=None if last is None else (self._now_ns() - last) / 1e9,
                in_session=link.state in IN_WINDOW,
                failing_s=link.outages.failing_for(time.monotonic()),
                unacked=sender.unacked if sender is not None else 0,
            ),
        )
