"""The WS collector's link to the provider's real-time stream: one session at a time, driven through
the `ws_states` table on the worker's loop thread.

Each `tick`: read the sessions' status reports, join ended reader threads, follow the
trading-session window (`observer.sessions`), then by state — UP: read control frames (acks,
PINGPONG) through the stream, send the subscription requests due, run the receive watchdog and the
silent-symbol check; WAITING: open a session once the retry time has come and no old reader
thread is left (exactly one session per credential). In the window, an outage that has lasted
``pause_after_failure_s`` is escalated once (CRITICAL + ``day_anomalous``).

Reconnect backoff follows ``track_b.reconnect_backoff_s`` and is reset after ``healthy_reset_s``
of health; every loss opens or extends one outage (`ws_report.OutageTracker`), which becomes one
gap marker when data flows again or the window closes. The stream is reached only through
`collectors.providers.IRealtimeStream`.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable
from datetime import date

from collectors.providers import (
    ControlOutcome,
    IRealtimeStream,
    IStreamSession,
    OverflowEpisode,
    SessionDown,
    SessionStatus,
    SessionUp,
    SessionWiring,
)
from collectors.ws_report import Outage, OutageTracker, WsReporter
from collectors.ws_states import IN_WINDOW, LinkState, check_transition
from observer.clock import Clock, kst_date
from observer.config import TrackBConfig
from observer.retry import Backoff
from observer.schema import DetailValue, Severity
from observer.sessions import MarketSessions

S = LinkState


class Link:
    """See the module docstring. ``state`` changes only through `_to` (checked against the table)."""

    def __init__(
        self,
        tb: TrackBConfig,
        stream: IRealtimeStream,
        sessions: MarketSessions,
        report: WsReporter,
        counters: dict[str, int],
        clock: Clock,
        now_ns: Callable[[], int],
        log: logging.Logger,
        *,
        key_index: int = 0,
    ):
        self.tb = tb
        self.key_index = key_index  # the app key's number with several keys; 0: the only one
        self.stream = stream
        self.subs = stream.subscriptions
        self.sessions = sessions
        self.report = report
        self.counters = counters
        self.clock = clock
        self.now_ns = now_ns
        self.log = log
        self.state = S.CLOSED
        self.backoff = Backoff(schedule_s=tb.reconnect_backoff_s)
        self.outages = OutageTracker()
        self.status: queue.SimpleQueue[SessionStatus] = queue.SimpleQueue()
        self.overflow: queue.SimpleQueue[OverflowEpisode] = queue.SimpleQueue()
        self.wiring: SessionWiring | None = None  # set by the worker once its sockets exist
        self.session: IStreamSession | None = None
        self.closing: list[IStreamSession] = []  # sessions told to close whose thread has not ended
        self.last_any_mono = 0.0  # last frame of any kind (the receive watchdog), set by the worker too
        self._session_ids = 0
        self._next_connect_mono = 0.0
        self._up_mono = 0.0
        self._seen_frames = 0
        self._ups_in_window = 0
        self._anomalous_day: date | None = None
        self._last_silent_check = 0.0

    def _event(self, type_: str, severity: Severity, message: str, **details: DetailValue) -> None:
        if self.key_index:
            details["key_index"] = self.key_index
        self.report.event(type_, severity, message, **details)

    @property
    def _of_key(self) -> str:
        return f" of app key {self.key_index}" if self.key_index else ""

    def _to(self, target: LinkState) -> None:
        check_transition(self.state, target)
        self.state = target

    # ------------------------------------------------------------------ the loop's entry points
    def tick(self, now_mono: float) -> None:
        self._drain_status(now_mono)
        self.closing = [s for s in self.closing if not s.join(0)]
        self._follow_window(now_mono)
        if self.state is S.UP:
            self._drain_control(now_mono)
        if self.state is S.UP:
            self._send_requests(now_mono)
            self._watch(now_mono)
        elif self.state is S.WAITING:
            self._maybe_connect(now_mono)
        if self.state in IN_WINDOW:
            self._escalate(now_mono)

    def stop(self, join_s: float = 3.0) -> None:
        """End the session (not an outage) and wait up to `join_s` in all for the reader threads."""
        if self.session is not None:
            self._end_session("worker_stopping")
        deadline = time.monotonic() + join_s
        for s in self.closing:
            s.join(max(0.0, deadline - time.monotonic()))
        self._drain_status(time.monotonic())
        if self.state is not S.STOPPED:
            self._to(S.STOPPED)

    def outage_gap(self, outage: Outage, end_ns: int, extra_reason: str = "") -> None:
        if not outage.symbols:
            return  # a session without symbols (a failed key's) lost nothing
        self.counters["outage_gaps"] += 1
        self.report.outage_gap(outage, end_ns, extra_reason)

    def fail_over(self, now_mono: float) -> None:
        """This key has failed and its symbols move to other keys: its outage ends here, as a gap
        marker for what it carried; its session keeps being retried, without symbols."""
        ended = self.outages.close()
        if ended is not None:
            self.outage_gap(ended, self.now_ns(), extra_reason="key_failed")
        self.subs.set_desired([])

    # ------------------------------------------------------------------ window and sessions
    def _follow_window(self, now_mono: float) -> None:
        want = self.sessions.track_b_open(self.clock.now(), self.tb.session_margin_s)
        if want and self.state is S.CLOSED:
            self._to(S.WAITING)
            self._ups_in_window = 0
            self.backoff.reset()
            self._next_connect_mono = now_mono
            self._event("ws_session_window", "INFO", "trading session window opened")
        elif not want and self.state in IN_WINDOW:
            if self.session is not None:
                self._end_session("session_window_closed")
            self._to(S.CLOSED)
            ended = self.outages.close()
            if ended is not None:
                self.outage_gap(ended, self.now_ns(), extra_reason="session_window_closed")
            self._event("ws_session_window", "INFO", "trading session window closed")

    def _maybe_connect(self, now_mono: float) -> None:
        if self.closing or now_mono < self._next_connect_mono:
            return
        assert self.wiring is not None, "the worker wires the link before its first tick"
        self._session_ids += 1
        self.session = self.stream.open_session(self._session_ids, self.wiring)
        self._to(S.CONNECTING)
        self.session.start()

    def _drain_status(self, now_mono: float) -> None:
        while True:
            try:
                st = self.status.get_nowait()
            except queue.Empty:
                return
            current = self.session
            if current is None or st.session_id != current.session_id:
                continue  # a session we already gave up on
            match st:
                case SessionUp():
                    self._session_up(now_mono)
                case SessionDown(reason=reason, detail=detail):
                    if self.state is S.UP:
                        self._drain_control(now_mono)  # acks read before the close (OPSP8996)
                    if self.session is not current:
                        continue  # an ack already ended it
                    self.session = None
                    self.closing.append(current)
                    self._session_lost(reason, detail, now_mono)

    def _session_up(self, now_mono: float) -> None:
        assert self.session is not None
        self._to(S.UP)
        self.subs.reset()
        self._up_mono = now_mono
        self.last_any_mono = now_mono
        self._seen_frames = 0
        self.counters["sessions_opened"] += 1
        if self._ups_in_window:
            self.counters["reconnects"] += 1
        self._ups_in_window += 1
        self.log.info(
            "ws session up",
            extra={"session": self.session.session_id, "url": self.stream.url, "key_index": self.key_index},
        )

    def _session_lost(
        self, reason: str, detail: str, now_mono: float, *, delay_s: float | None = None
    ) -> None:
        """The session is gone (or never came up): open/extend the outage, schedule a retry."""
        self._to(S.WAITING)
        self.counters["session_failures"] += 1
        symbols = self.subs.registered or self.subs.desired[: self.tb.max_slots]
        outage = self.outages.lost(reason, symbols, self.now_ns(), now_mono)
        self.subs.reset()
        delay = self.backoff.next_delay()
        if delay_s is not None:
            delay = max(delay, delay_s)
        self._next_connect_mono = now_mono + delay
        self.report.feed(
            "disconnected",
            "WARNING",
            f"websocket session{self._of_key} lost ({reason}); retry in {delay:.0f} s",
            key_index=self.key_index,
            symbols=outage.symbols,
            reason=reason,
            detail=detail,
            retry_in_s=delay,
            attempt=outage.attempts,
        )

    def _let_go(self) -> None:
        session = self.session
        assert session is not None
        session.close()
        self.session = None
        self.closing.append(session)

    def _drop_session(self, reason: str, now_mono: float, *, delay_s: float | None = None) -> None:
        """Give the session up (watchdog, session in use, key rejected): an outage."""
        self._let_go()
        self._session_lost(reason, "", now_mono, delay_s=delay_s)

    def _end_session(self, reason: str) -> None:
        """Close the session on purpose (end of the window, shutdown): not an outage."""
        self._let_go()
        self.subs.reset()
        self.log.info("ws session closed", extra={"reason": reason})

    # ------------------------------------------------------------------ while UP
    def _drain_control(self, now_mono: float) -> None:
        session = self.session
        assert session is not None
        if session.frames != self._seen_frames:
            self._seen_frames = session.frames
            self.last_any_mono = now_mono
        while session.control and self.session is session:
            _, data = session.control.popleft()
            outcome = self.stream.on_control(data, now_mono)
            if outcome.action == "pingpong":
                self.counters["pingpongs"] += 1
            elif outcome.action == "invalid":
                self.counters["invalid_control"] += 1
                self.report.rejected(outcome.message)
            else:
                self.counters["acks"] += 1
                self._act_on(outcome, now_mono)

    def _act_on(self, outcome: ControlOutcome, now_mono: float) -> None:
        if outcome.action == "none":
            return
        self.counters["ack_events"] += 1
        details = {"symbol": outcome.symbol, "code": outcome.code}
        if outcome.action == "event":
            self._event("ws_subscription", outcome.severity, outcome.message, **details)
        elif outcome.action == "session_in_use":
            self.counters["session_in_use"] += 1
            self._event("ws_session_in_use", "WARNING", outcome.message, **details)
            self._drop_session("session_in_use", now_mono, delay_s=self.tb.session_in_use_backoff_s)
        elif outcome.action == "invalid_key":
            self.stream.invalidate_credentials()
            self._event("ws_approval_invalid", "WARNING", outcome.message, **details)
            self._drop_session("approval_key_invalid", now_mono)

    def _send_requests(self, now_mono: float) -> None:
        session = self.session
        assert session is not None
        for text in self.stream.request_texts(now_mono):
            if not session.send_text(text):
                return  # the reader will report the session down

    def _watch(self, now_mono: float) -> None:
        if self.subs.held and now_mono - self.last_any_mono >= self.tb.receive_watchdog_s:
            self._drop_session("receive_watchdog", now_mono)
            return
        if (
            self.backoff.failures
            and now_mono - self._up_mono >= self.tb.healthy_reset_s
            and now_mono - self.last_any_mono < self.tb.receive_watchdog_s
            and self.outages.current is None
        ):
            self.backoff.reset()
        if now_mono - self._last_silent_check >= 1.0:
            self._last_silent_check = now_mono
            for symbol in self.subs.silent_symbols(now_mono):
                self.counters["silent_reports"] += 1
                self._event(
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
            outage,
            self.tb.pause_after_failure_s,
            day,
            day_first=self._anomalous_day != day,
            key_index=self.key_index,
        )
        self._anomalous_day = day
