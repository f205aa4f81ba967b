"""The Track B collector worker (``ws-collector``): KIS real-time trades onto the ingest hop.

Data flow::

    SlotCommand (event topic "slots") -> SubscriptionManager (desired <= 41 symbols)
                                              | subscribe / unsubscribe text frames
    KIS WebSocket -> WsSession reader thread  v
        stamps receive time -> inproc PUSH (bounded) -> loop thread: ws_parser -> TradeFrame
        -> ReliableSender (ingest hop, from this thread only) -> core

Around it, on the loop thread: the trading-session schedule (open at ``track_b.start``, closed
after ``track_b.end`` KST on trading days, again the next trading day by itself), exactly one
session at a time (the old reader thread is joined before a new session opens), reconnect
backoff (``track_b.reconnect_backoff_s``, reset after ``healthy_reset_s`` of health), the receive
watchdog, one gap marker per outage (last frame before -> first frame after), CRITICAL +
``day_anomalous`` after ``pause_after_failure_s`` of consecutive failure, ``symbol_silent`` events
for acked-but-silent symbols, and `WorkerStats` on ``stats.ws-collector``.

System events and gap markers go on the ingest hop (archived under ``system/``); system events are
also published on the event topic ``system.ws-collector`` for live listeners (the slot manager).
"""

from __future__ import annotations

import queue
import time
from datetime import date
from typing import Any

import msgspec
import zmq

from collectors.kis.approval import ApprovalKeyProvider
from collectors.kis.settings import KisSettings, resolve_kis_settings
from collectors.kis.subscriptions import SubscriptionManager, request_text
from collectors.kis.ws import (
    OverflowEpisode,
    SessionDown,
    SessionStatus,
    SessionUp,
    WsSession,
    unpack_frame,
)
from collectors.kis.ws_parser import parse_control_frame, parse_data_frame
from collectors.ws_report import COUNTERS, Outage, OutageTracker, WsReporter
from observer.bus import SLOTS, EventSubscriber, stats_topic
from observer.clock import Clock, SystemClock, datetime_to_ns, kst_date, ns_to_datetime
from observer.config import Config, Secrets
from observer.reliable import ReliableSender, hop_endpoints
from observer.retry import Backoff
from observer.schema import SlotCommand, SystemEvent, TradeFrame, WorkerStats
from observer.sessions import MarketSessions
from observer.worker_base import Worker

MARKET = "KRX"
TR_ID = "H0STCNT0"
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
        settings: KisSettings | None = None,
    ):
        super().__init__(cfg, clock=clock, secrets=secrets)
        tb = cfg.track_b
        self.tb = tb
        self.settings = settings or resolve_kis_settings(cfg, self.secrets)
        self.sessions = sessions or MarketSessions.from_config(cfg)
        self.subs = SubscriptionManager(
            max_registrations=tb.max_slots,
            tr_id=TR_ID,
            ack_timeout_s=tb.ack_timeout_s,
            cap_backoff_s=tb.cap_backoff_s,
            silent_after_s=tb.silent_symbol_s,
        )
        self.backoff = Backoff(schedule_s=tb.reconnect_backoff_s)
        self.outages = OutageTracker()
        self.report = WsReporter(
            self.name,
            self.run_id,
            cfg.provider.name,
            MARKET,
            make_event=self.make_event,
            send=self._send,
            publish=self._publish,
            log=self.log,
            rejection_interval_s=tb.rejection_event_interval_s,
        )
        self._now_ns = time.time_ns if isinstance(self.clock, SystemClock) else self._clock_ns
        self._status: queue.SimpleQueue[SessionStatus] = queue.SimpleQueue()
        self._overflow: queue.SimpleQueue[OverflowEpisode] = queue.SimpleQueue()
        self.session: WsSession | None = None
        self._closing: list[WsSession] = []
        self._session_ids = 0
        self._in_session = False
        self._next_connect_mono = 0.0
        self._up_mono = 0.0
        self._last_any_mono = 0.0
        self._seen_frames = 0
        self._had_session_today = False
        self._anomalous_day: date | None = None
        self._last_stats_mono = 0.0
        self._last_silent_check = 0.0
        self.approval: ApprovalKeyProvider | None = None
        self.sender: ReliableSender | None = None
        self.slot_events: EventSubscriber | None = None
        self._frames_sock: zmq.Socket[Any] | None = None
        self._frames_endpoint = f"inproc://ws-frames-{self.run_id}"
        # counters (names in `ws_report.COUNTERS`)
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)

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
        self.approval = ApprovalKeyProvider(self.settings)
        self._frames_sock = self.ctx.socket(zmq.PULL)
        self._frames_sock.setsockopt(zmq.LINGER, 0)
        self._frames_sock.setsockopt(zmq.RCVHWM, self.tb.frame_queue_max)
        self._frames_sock.bind(self._frames_endpoint)
        self.register(self._frames_sock, self.handle_frames)
        data_ep, ack_ep = hop_endpoints(self.cfg, "ingest")
        self.sender = ReliableSender(
            self.ctx, self.cfg, self.name, data_ep, ack_ep, run_id=self.run_id, on_gap=self.report.seq_gap
        )
        self.register(self.sender.ack_sub, self.sender.handle_acks)
        self.slot_events = EventSubscriber(self.ctx, self.cfg, [SLOTS])
        self.register(self.slot_events.sock, self.handle_slots)

    def on_tick(self) -> None:
        now_mono = time.monotonic()
        self._drain_status(now_mono)
        self._reap_closing()
        self._follow_schedule(now_mono)
        if self.session is not None and self.session.up:
            self._drain_control(now_mono)
            self._send_requests(now_mono)
            self._watch(now_mono)
        elif self._in_session:
            self._maybe_connect(now_mono)
        if self._in_session:
            self._escalate(now_mono)
        self._drain_overflow()
        self.report.flush_rejections(now_mono)
        if self.sender is not None:
            self.sender.pump()
        if now_mono - self._last_stats_mono >= self.tb.stats_interval_s:
            self._last_stats_mono = now_mono
            self._publish_stats()

    def on_stop(self) -> None:
        if self.session is not None:
            self._end_session("worker_stopping")
        deadline = time.monotonic() + 3.0
        for s in self._closing:
            s.join(max(0.0, deadline - time.monotonic()))
        self._drain_status(time.monotonic())
        if self.sender is not None:
            self.sender.wait_all_acked(2.0)
            self.sender.close()
        if self.slot_events is not None:
            self.slot_events.close()
        if self._frames_sock is not None:
            self._frames_sock.close(linger=0)
        if self.approval is not None:
            self.approval.close()

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
        parsed = parse_data_frame(text, received_at)
        self.counters["frames"] += 1
        self._last_any_mono = now_mono
        ended = self.outages.frame(at_ns)
        if ended is not None:
            self._outage_gap(ended, at_ns)
        if parsed.error:
            self.counters["rejected"] += 1
            self.report.rejected(parsed.error)
        else:
            self.counters["ticks"] += len(parsed.ticks)
            for tick in parsed.ticks:
                self.subs.note_data(tick.symbol, now_mono)
        self.sender.send(
            TradeFrame(
                provider=self.cfg.provider.name,
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

    # ------------------------------------------------------------------ session lifecycle
    def _follow_schedule(self, now_mono: float) -> None:
        now = self.clock.now()
        want = self.sessions.track_b_open(now, self.tb.session_margin_s)
        if want and not self._in_session:
            self._in_session = True
            self._had_session_today = False
            self.backoff.reset()
            self._next_connect_mono = now_mono
            self.report.event("ws_session_window", "INFO", "trading session window opened")
        elif not want and self._in_session:
            self._in_session = False
            if self.session is not None:
                self._end_session("session_window_closed")
            ended = self.outages.close()
            if ended is not None:
                self._outage_gap(ended, self._now_ns(), extra_reason="session_window_closed")
            self.report.event("ws_session_window", "INFO", "trading session window closed")

    def _maybe_connect(self, now_mono: float) -> None:
        if self.session is not None or self._closing or now_mono < self._next_connect_mono:
            return
        assert self.ctx is not None and self.approval is not None
        self._session_ids += 1
        self.session = WsSession(
            self._session_ids,
            self.settings.ws_url,
            self.approval,
            ctx=self.ctx,
            frames_endpoint=self._frames_endpoint,
            frames_hwm=self.tb.frame_queue_max,
            now_ns=self._now_ns,
            status=self._status,
            overflow=self._overflow,
            connect_timeout_s=self.tb.connect_timeout_s,
        )
        self.session.start()

    def _drain_status(self, now_mono: float) -> None:
        while True:
            try:
                st = self._status.get_nowait()
            except queue.Empty:
                return
            current = self.session
            if current is None or st.session_id != current.session_id:
                continue  # a session we already gave up on
            match st:
                case SessionUp():
                    self._session_up(now_mono)
                case SessionDown(reason=reason, detail=detail):
                    self._drain_control(now_mono)  # acks read before the close (OPSP8996)
                    if self.session is not current:
                        continue  # an ack already ended it
                    self.session = None
                    self._closing.append(current)
                    self._session_lost(reason, detail, now_mono)

    def _session_up(self, now_mono: float) -> None:
        assert self.session is not None
        self.subs.reset()
        self._up_mono = now_mono
        self._last_any_mono = now_mono
        self._seen_frames = 0
        self.counters["sessions_opened"] += 1
        if self._had_session_today:
            self.counters["reconnects"] += 1
        self._had_session_today = True
        self.log.info(
            "ws session up", extra={"session": self.session.session_id, "url": self.settings.ws_url}
        )

    def _session_lost(
        self, reason: str, detail: str, now_mono: float, *, delay_s: float | None = None
    ) -> None:
        """The current session is gone (or never came up): open/extend the outage, schedule a retry."""
        self.counters["session_failures"] += 1
        symbols = self.subs.registered or self.subs.desired[: self.tb.max_slots]
        outage = self.outages.lost(reason, symbols, self._now_ns(), now_mono)
        self.subs.reset()
        delay = self.backoff.next_delay()
        if delay_s is not None:
            delay = max(delay, delay_s)
        self._next_connect_mono = now_mono + delay
        self.report.event(
            "ws_disconnected",
            "WARNING",
            f"websocket session lost ({reason}); retry in {delay:.0f} s",
            reason=reason,
            detail=detail,
            retry_in_s=delay,
            attempt=outage.attempts,
        )

    def _drop_session(self, reason: str, now_mono: float, *, delay_s: float | None = None) -> None:
        session = self.session
        assert session is not None
        session.close()
        self.session = None
        self._closing.append(session)
        self._session_lost(reason, "", now_mono, delay_s=delay_s)

    def _end_session(self, reason: str) -> None:
        """Close the session on purpose (end of day, shutdown): not an outage."""
        session = self.session
        assert session is not None
        session.close()
        self.session = None
        self._closing.append(session)
        self.subs.reset()
        self.log.info("ws session closed", extra={"reason": reason})

    def _reap_closing(self) -> None:
        self._closing = [s for s in self._closing if not s.join(0)]

    # ------------------------------------------------------------------ while connected
    def _drain_control(self, now_mono: float) -> None:
        session = self.session
        assert session is not None
        if session.frames != self._seen_frames:
            self._seen_frames = session.frames
            self._last_any_mono = now_mono
        while session.control and self.session is session:
            _, data = session.control.popleft()
            ctl = parse_control_frame(data)
            if ctl.kind == "pingpong":
                self.counters["pingpongs"] += 1
            elif ctl.kind == "invalid":
                self.counters["invalid_control"] += 1
                self.report.rejected(ctl.error)
            else:
                self.counters["acks"] += 1
                self._handle_ack_outcome(self.subs.handle_ack(ctl, now_mono), now_mono)

    def _handle_ack_outcome(self, outcome: Any, now_mono: float) -> None:
        if outcome.action == "none":
            return
        self.counters["ack_events"] += 1
        details = {"symbol": outcome.symbol, "code": outcome.code}
        if outcome.action == "event":
            self.report.event("ws_subscription", outcome.severity, outcome.message, **details)
        elif outcome.action == "session_in_use":
            self.counters["session_in_use"] += 1
            self.report.event("ws_session_in_use", "WARNING", outcome.message, **details)
            self._drop_session("session_in_use", now_mono, delay_s=self.tb.session_in_use_backoff_s)
        elif outcome.action == "invalid_key":
            assert self.approval is not None
            self.approval.invalidate()
            self.report.event("ws_approval_invalid", "WARNING", outcome.message, **details)
            self._drop_session("approval_key_invalid", now_mono)

    def _send_requests(self, now_mono: float) -> None:
        session, approval = self.session, self.approval
        assert approval is not None
        key = approval.cached
        if session is None or key is None:
            return
        for req in self.subs.next_requests(now_mono):
            if not session.send_text(request_text(key, TR_ID, req)):
                return  # the reader will report the session down

    def _watch(self, now_mono: float) -> None:
        if self.subs.held and now_mono - self._last_any_mono >= self.tb.receive_watchdog_s:
            self._drop_session("receive_watchdog", now_mono)
            return
        if (
            self.backoff.failures
            and now_mono - self._up_mono >= self.tb.healthy_reset_s
            and now_mono - self._last_any_mono < self.tb.receive_watchdog_s
            and self.outages.current is None
        ):
            self.backoff.reset()
        if now_mono - self._last_silent_check >= 1.0:
            self._last_silent_check = now_mono
            for symbol in self.subs.silent_symbols(now_mono):
                self.counters["silent_reports"] += 1
                self.report.event(
                    "symbol_silent",
                    "WARNING",
                    f"{symbol} subscribed and acknowledged but silent",
                    symbol=symbol,
                    silent_s=self.tb.silent_symbol_s,
                )

    def _escalate(self, now_mono: float) -> None:
        outage = self.outages.current
        if outage is None or outage.escalated:
            return
        if self.outages.failing_for(now_mono) < self.tb.pause_after_failure_s:
            return
        outage.escalated = True
        day = kst_date(self.clock.now())
        self.report.escalation(
            outage, self.tb.pause_after_failure_s, day, day_first=self._anomalous_day != day
        )
        self._anomalous_day = day

    # ------------------------------------------------------------------ gaps
    def _outage_gap(self, outage: Outage, end_ns: int, extra_reason: str = "") -> None:
        self.counters["outage_gaps"] += 1
        self.report.outage_gap(outage, end_ns, extra_reason)

    def _drain_overflow(self) -> None:
        while True:
            try:
                ep = self._overflow.get_nowait()
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
        session = self.session
        connected = session is not None and session.up
        last = self.outages.last_frame_ns
        age = (self._now_ns() - last) / 1e9 if last is not None else -1.0
        return {
            "connected": 1.0 if connected else 0.0,
            "subscribed": float(len(self.subs.registered)) if connected else 0.0,
            "held": float(self.subs.held) if connected else 0.0,
            "desired": float(len(self.subs.desired)),
            "peak_registrations": float(self.subs.peak_registrations),
            "last_frame_age_s": age,
            "in_session": 1.0 if self._in_session else 0.0,
            "failing_s": self.outages.failing_for(time.monotonic()),
            "unacked": float(self.sender.unacked) if self.sender is not None else 0.0,
        }

    def _publish_stats(self) -> None:
        if self.events is None:
            return
        session = self.session
        counters = {k: float(v) for k, v in self.counters.items()}
        if session is not None:
            counters["session_dropped_frames"] = float(session.dropped_frames)
        if self.sender is not None:
            counters["ingest_resent"] = float(self.sender.resent)
            counters["ingest_resend_rounds"] = float(self.sender.resend_rounds)
            counters["ingest_abandoned"] = float(self.sender.abandoned)
        self.events.publish(
            stats_topic(self.name),
            WorkerStats(worker=self.name, at=self.clock.now(), counters=counters, gauges=self._gauges()),
        )
