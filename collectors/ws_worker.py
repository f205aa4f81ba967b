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

Several app keys: one `Link` per key (its own session, approval key, 41 registrations, outages and
frame socket). The core numbers its slots 1..N x ``track_b.max_slots``; slot ``n`` is served by key
``(n - 1) // max_slots + 1``. A key whose session stays down ``track_b.key_failover_s`` while
another key's is up has *failed*: its outage becomes a gap marker for its symbols and a
``ws_key_failed`` event (on the ingest hop) tells the core, which moves them to free slots of the
other keys or to the overflow ledger; ``ws_key_up`` (a key's session up, first in this run or again
after failing) makes its slots usable.
"""

from __future__ import annotations

import functools
import queue
import time
from typing import Any

import msgspec
import zmq

from collectors.providers import IRealtimeStream, SessionWiring, build_streams, unpack_frame
from collectors.ws_link import Link
from collectors.ws_report import COUNTERS, WsReporter
from collectors.ws_states import IN_WINDOW, LinkState
from observer.bus import SLOTS, EventSubscriber, stats_topic
from observer.clock import Clock, SystemClock, datetime_to_ns, ns_to_datetime
from observer.config import Config, Secrets, key_slots
from observer.reliable import ReliableSender, hop_endpoints
from observer.schema import SlotAssignment, SlotCommand, SystemEvent, TradeFrame, WsCollectorStats
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
        streams: list[IRealtimeStream] | None = None,
    ):
        super().__init__(cfg, clock=clock, secrets=secrets)
        self.tb = cfg.track_b
        self.streams = streams or ([stream] if stream is not None else build_streams(cfg, self.secrets))
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
        # counters (names in `ws_report.COUNTERS`), over all keys
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        market_sessions = sessions or MarketSessions.from_config(cfg)
        several = len(self.streams) > 1
        self.links = [
            Link(
                self.tb,
                stream,
                market_sessions,
                self.report,
                self.counters,
                self.clock,
                self._now_ns,
                self.log,
                key_index=stream.key_index if several else 0,
            )
            for stream in self.streams
        ]
        self.link, self.stream = self.links[0], self.streams[0]  # the first key's (the only one, mostly)
        self.subs = self.stream.subscriptions
        self.failed_keys: set[int] = set()  # keys whose symbols the core was told to move
        self._keys_up: set[int] = set()  # keys whose slots the core was told are usable
        self._beyond_reported = False
        self._last_stats_mono = 0.0
        self.sender: ReliableSender | None = None
        self.slot_events: EventSubscriber | None = None
        self._frame_socks: list[zmq.Socket[Any]] = []

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
        for i, link in enumerate(self.links):
            endpoint = f"inproc://ws-frames-{self.run_id}-{i}"
            sock = self.ctx.socket(zmq.PULL)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.RCVHWM, self.tb.frame_queue_max)
            sock.bind(endpoint)
            self._frame_socks.append(sock)
            self.register(sock, functools.partial(self.handle_frames, link, sock))
            link.wiring = SessionWiring(
                ctx=self.ctx,
                frames_endpoint=endpoint,
                frames_hwm=self.tb.frame_queue_max,
                now_ns=self._now_ns,
                status=link.status,
                overflow=link.overflow,
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
        for link in self.links:
            link.tick(now_mono)
        if len(self.links) > 1:
            self._follow_keys(now_mono)
        self._drain_overflow()
        self.report.flush_rejections(now_mono)
        if self.sender is not None:
            self.sender.pump()
        if now_mono - self._last_stats_mono >= self.tb.stats_interval_s:
            self._last_stats_mono = now_mono
            self._publish_stats()

    def on_stop(self) -> None:
        for link in self.links:
            link.stop()
        if self.sender is not None:
            # frames the reader took off the socket before the session ended are archived, not
            # dropped with the queue (found by the chaos soak: trades of the last milliseconds lost)
            for link, sock in zip(self.links, self._frame_socks, strict=False):
                while sock.poll(0):
                    self.handle_frames(link, sock)
        if self.sender is not None:
            self.sender.wait_all_acked(2.0)
            self.sender.close()
        if self.slot_events is not None:
            self.slot_events.close()
        for sock in self._frame_socks:
            sock.close(linger=0)
        for stream in self.streams:
            stream.close()

    # ------------------------------------------------------------------ several keys
    def _follow_keys(self, now_mono: float) -> None:
        """A key down for ``key_failover_s`` while another is up has failed (its symbols move); a
        key's session up (first in this run, or again after failing) makes its slots usable. A feed
        down as a whole is an outage of every key, not a failure of one: nothing moves."""
        up = [link for link in self.links if link.state is LinkState.UP]
        for link in self.links:
            key = link.key_index
            if link.state is LinkState.UP:
                if key not in self._keys_up:
                    self._keys_up.add(key)
                    self.failed_keys.discard(key)
                    self.report.event(
                        "ws_key_up", "INFO", f"app key {key}'s session is up: its slots {self._slot_range(key)} are usable",
                        key_index=key, slots=self._slot_range(key),
                    )  # fmt: skip
                continue
            if key in self.failed_keys or not up:
                continue
            if link.outages.failing_for(now_mono) >= self.tb.key_failover_s:
                self.failed_keys.add(key)
                self._keys_up.discard(key)
                link.fail_over(now_mono)
                self.report.event(
                    "ws_key_failed",
                    "ERROR",
                    f"app key {key}'s session down for {self.tb.key_failover_s:.0f} s while other keys "
                    f"stream; its symbols move to the other keys",
                    key_index=key,
                    slots=self._slot_range(key),
                )

    def _slot_range(self, key: int) -> str:
        slots = key_slots(key, self.tb.max_slots)
        return f"{slots[0]}-{slots[-1]}"

    # ------------------------------------------------------------------ the hot path
    def handle_frames(self, link: Link, sock: zmq.Socket[Any]) -> None:
        for _ in range(_DRAIN_MAX):
            try:
                msg = sock.recv(flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            at_ns, data = unpack_frame(msg.buffer)
            self.handle_data_frame(at_ns, data, link)

    def handle_data_frame(self, at_ns: int, data: bytes, link: Link | None = None) -> None:
        assert self.sender is not None
        link = link or self.link
        now_mono = time.monotonic()
        text = data.decode("utf-8", "replace")
        received_at = ns_to_datetime(at_ns)
        parsed = link.stream.parse_data(text, received_at)
        self.counters["frames"] += 1
        link.last_any_mono = now_mono
        ended = link.outages.frame(at_ns)
        if ended is not None:
            link.outage_gap(ended, at_ns)
        if parsed.error:
            self.counters["rejected"] += 1
            self.report.rejected(parsed.error)
        else:
            self.counters["ticks"] += len(parsed.ticks)
            subs = link.subs
            for tick in parsed.ticks:
                subs.note_data(tick.symbol, now_mono)
        self.sender.send(
            TradeFrame(
                provider=self.cfg.archive_provider,
                market=MARKET,
                received_at=received_at,
                raw=text,
                tr_id=parsed.tr_id,
                ticks=parsed.ticks,
                parse_error=parsed.error,
                key_index=link.key_index,
            )
        )

    # ------------------------------------------------------------------ slots
    def handle_slots(self) -> None:
        assert self.slot_events is not None
        while (got := self.slot_events.recv_nowait()) is not None:
            match got[1]:
                case SlotCommand(slots=slots, paused=paused):
                    self.counters["slot_commands"] += 1
                    self._place(sorted(slots, key=lambda a: a.slot_number), paused)
                case _:
                    pass

    def _place(self, ordered: list[SlotAssignment], paused: bool) -> None:
        """Each key's session wants the symbols of its slot range."""
        per = self.tb.max_slots
        wanted: list[list[str]] = [[] for _ in self.links]
        beyond = []
        for a in [] if paused else ordered:
            i = (a.slot_number - 1) // per
            if i < len(wanted):
                wanted[i].append(a.symbol)
            else:
                beyond.append(a.symbol)
        for link, symbols in zip(self.links, wanted, strict=True):
            link.subs.set_desired(symbols)
        if beyond and not self._beyond_reported:
            self._beyond_reported = True
            self.report.event(
                "ws_slots_beyond_keys",
                "ERROR",
                f"{len(beyond)} slots lie beyond this collector's {len(self.links)} app keys "
                f"({len(self.links) * per} slots); they are not watched",
                symbols=len(beyond),
            )

    # ------------------------------------------------------------------ reader overflow
    def _drain_overflow(self) -> None:
        for link in self.links:
            while True:
                try:
                    ep = link.overflow.get_nowait()
                except queue.Empty:
                    break
                self.counters["dropped_frames"] += ep.frames
                self.counters["overflow_gaps"] += 1
                self.report.gap(
                    link.subs.registered,
                    ep.first_ns,
                    ep.last_ns,
                    "collector_queue_overflow",
                    frames=ep.frames,
                )

    # ------------------------------------------------------------------ stats
    def stats(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.counters.items()} | self._gauges()

    def _gauges(self) -> dict[str, float]:
        g = self._gauge_values()
        return {k: float(v) if v is not None else -1.0 for k, v in g.items()}

    def _gauge_values(self) -> dict[str, Any]:
        """Over all keys: connected when every key's session is up; registrations summed; the
        peak is per session (the KIS cap is per session)."""
        links = self.links
        ups = [link for link in links if link.state is LinkState.UP]
        last = max((link.outages.last_frame_ns or 0 for link in links), default=0) or None
        now_mono = time.monotonic()
        return {
            "connected": len(ups) == len(links),
            "subscribed": sum(len(link.subs.registered) for link in ups),
            "held": sum(link.subs.held for link in ups),
            "desired": sum(len(link.subs.desired) for link in links),
            "peak_registrations": max(link.subs.peak_registrations for link in links),
            "last_frame_age_s": None if last is None else (self._now_ns() - last) / 1e9,
            "in_session": any(link.state in IN_WINDOW for link in links),
            "failing_s": max(link.outages.failing_for(now_mono) for link in links),
            "unacked": self.sender.unacked if self.sender is not None else 0,
            "sessions": len(links),
            "sessions_up": len(ups),
            "keys_failed": len(self.failed_keys),
        }

    def _publish_stats(self) -> None:
        if self.events is None:
            return
        sender = self.sender
        fields: dict[str, Any] = {
            **self.counters,  # the COUNTERS fields
            "session_dropped_frames": sum(
                link.session.dropped_frames for link in self.links if link.session is not None
            ),
            "ingest_resent": sender.resent if sender is not None else 0,
            "ingest_resend_rounds": sender.resend_rounds if sender is not None else 0,
            "ingest_abandoned": sender.abandoned if sender is not None else 0,
            **self._gauge_values(),
        }
        self.events.publish(
            stats_topic(self.name), WsCollectorStats(worker=self.name, at=self.clock.now(), **fields)
        )
