"""What the ws-collector tells the rest of the system: outages, gap markers, events, rejections.

`OutageTracker` turns session losses into outages: one per stretch without data, from the last
data frame received before it to the first one after it, however many reconnect attempts it took.

`WsReporter` builds the messages: each `GapMarker` (track ``scalp``), `FeedStatus` (disconnected,
failure), `DayAnomalous` and `SystemEvent` goes on the ingest hop (archived under ``system/``);
the events are also published, as the `SystemEvent` archived, on the event topic
``system.<worker>`` for live listeners; rejected frames are reported as one rate-limited
``ws_frame_rejected`` event with a count. Every message is logged without any secret.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import msgspec

from observer import record_ids
from observer.bus import system_topic
from observer.clock import Clock, ns_to_datetime
from observer.gap_markers import lost_range
from observer.reliable import SeqGap
from observer.schema import DayAnomalous, DetailValue, FeedState, FeedStatus, GapMarker, Severity, SystemEvent

COUNTERS = (
    "frames", "ticks", "rejected", "reconnects", "sessions_opened", "session_failures", "dropped_frames",
    "overflow_gaps", "outage_gaps", "acks", "ack_events", "pingpongs", "invalid_control", "slot_commands",
    "silent_reports", "session_in_use",
)  # fmt: skip
_LOG_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}


@dataclass(slots=True)
class Outage:
    """One stretch without data: from the last frame before it to the first frame after it."""

    start_ns: int  # receive time of the last data frame before the outage (or when it began)
    began_ns: int  # when the loss was noticed
    began_mono: float  # when the loss was noticed (real monotonic seconds)
    symbols: list[str]
    reasons: list[str]
    attempts: int = 0
    escalated: bool = False


class OutageTracker:
    """Turns session losses and the first frame after them into exactly one outage each."""

    def __init__(self) -> None:
        self.last_frame_ns: int | None = None
        self.current: Outage | None = None
        self.count = 0

    def frame(self, at_ns: int) -> Outage | None:
        """A data frame arrived; returns the outage it ends, if any. A frame received before the
        loss was noticed (still queued from the old session) moves the outage's start instead."""
        self.last_frame_ns = at_ns
        current = self.current
        if current is None:
            return None
        if at_ns <= current.began_ns:
            current.start_ns = max(current.start_ns, at_ns)
            return None
        self.current = None
        return current

    def lost(self, reason: str, symbols: list[str], now_ns: int, now_mono: float) -> Outage:
        """The session is gone (or never came up): open an outage, or extend the open one."""
        if self.current is None:
            start = self.last_frame_ns if self.last_frame_ns is not None else now_ns
            self.current = Outage(start, now_ns, now_mono, sorted(symbols), [reason])
            self.count += 1
        else:
            if reason not in self.current.reasons:
                self.current.reasons.append(reason)
            known = set(self.current.symbols)
            self.current.symbols.extend(sorted(s for s in symbols if s not in known))
        self.current.attempts += 1
        return self.current

    def close(self) -> Outage | None:
        """The session ends on purpose (end of day, shutdown): the open outage, if any, ends now."""
        ended, self.current = self.current, None
        self.last_frame_ns = None
        return ended

    def failing_for(self, now_mono: float) -> float:
        return 0.0 if self.current is None else now_mono - self.current.began_mono


class WsReporter:
    """Builds and sends gap markers and system events (see the module docstring)."""

    def __init__(
        self,
        worker: str,
        run_id: str,
        provider: str,
        market: str,
        *,
        clock: Clock,
        next_event_id: Callable[[], str],
        send: Callable[[msgspec.Struct], object],
        publish: Callable[[str, SystemEvent], None],
        log: logging.Logger,
        rejection_interval_s: float,
    ):
        self.worker, self.run_id, self.provider, self.market = worker, run_id, provider, market
        self._clock = clock
        self._next_event_id = next_event_id
        self._send = send
        self._publish = publish
        self._log = log
        self._rejection_interval_s = rejection_interval_s
        self._rejections_pending = 0
        self._last_rejection = ""
        self._last_rejection_event_mono = float("-inf")
        self._gap_seq = 0

    def event(self, type_: str, severity: Severity, message: str, **details: DetailValue) -> SystemEvent:
        ev = SystemEvent(
            record_id=self._next_event_id(),
            type=type_,
            severity=severity,
            at=self._clock.now(),
            source=self.worker,
            provider=self.provider,
            message=message,
            details=details,
        )
        self._tell(ev, ev)
        return ev

    def feed(
        self,
        state: FeedState,
        severity: Severity,
        message: str,
        *,
        key_index: int = 0,
        symbols: list[str] | None = None,
        **details: DetailValue,
    ) -> FeedStatus:
        """The feed is down (``disconnected``) or has failed for good (``failure``); with several
        keys, `key_index`'s session, carrying `symbols`."""
        if key_index:
            details["key_index"] = key_index
        status = FeedStatus(
            record_id=self._next_event_id(),
            state=state,
            at=self._clock.now(),
            source=self.worker,
            provider=self.provider,
            severity=severity,
            message=message,
            details=details,
            key_index=key_index,
            symbols=list(symbols or []) if key_index else [],
        )
        self._tell(status, status.event())
        return status

    def _tell(self, body: msgspec.Struct, ev: SystemEvent) -> None:
        self._send(body)
        self._publish(system_topic(self.worker), ev)
        self._log.log(_LOG_LEVELS.get(ev.severity, 20), ev.message, extra={"event": ev.type})

    def gap(self, symbols: list[str], start_ns: int, end_ns: int, reason: str, **details: Any) -> GapMarker:
        self._gap_seq += 1
        gap = lost_range(
            key=(self.worker, self.run_id, self._gap_seq),
            track="scalp",
            provider=self.provider,
            market=self.market,
            symbols=symbols,
            start=ns_to_datetime(start_ns),
            end=ns_to_datetime(end_ns),
            reason=reason,
            detected_by=self.worker,
            details=details,
        )
        self._send(gap)
        self._log.warning(
            "gap", extra={"reason": reason, "symbols": len(symbols), "seconds": (end_ns - start_ns) / 1e9}
        )
        return gap

    def outage_gap(self, outage: Outage, end_ns: int, extra_reason: str = "") -> GapMarker:
        reasons = [*outage.reasons, extra_reason] if extra_reason else list(outage.reasons)
        return self.gap(
            outage.symbols,
            outage.start_ns,
            end_ns,
            "ws_outage: " + ",".join(reasons),
            attempts=outage.attempts,
        )

    def escalation(
        self, outage: Outage, after_s: float, day: date, *, day_first: bool, key_index: int = 0
    ) -> None:
        """Consecutive failure past the threshold: CRITICAL, and the day anomalous (once per day)."""
        self.feed(
            "failure", "CRITICAL", f"websocket down for {after_s:.0f} s; scalp recording paused, still retrying",
            key_index=key_index, symbols=outage.symbols, reasons=list(outage.reasons), attempts=outage.attempts,
        )  # fmt: skip
        if day_first:
            anomalous = DayAnomalous(
                record_id=record_ids.event(self.worker, "day_anomalous", self.provider, f"{day:%Y%m%d}"),
                at=self._clock.now(),
                source=self.worker,
                provider=self.provider,
                day=day,
                severity="CRITICAL",
                reasons=["websocket failure over the pause threshold (ws_failure)"],
            )
            self._tell(anomalous, anomalous.event())

    def seq_gap(self, gap: SeqGap) -> None:
        """The ingest replay buffer overflowed (the core was away too long): those frames are lost."""
        self.event(
            "replay_overflow", "ERROR", f"ingest replay buffer overflowed: {gap.count} messages abandoned",
            first_seq=gap.first, last_seq=gap.last,
        )  # fmt: skip

    def rejected(self, reason: str) -> None:
        """Count one rejected frame; `flush_rejections` reports them."""
        self._rejections_pending += 1
        self._last_rejection = reason

    def flush_rejections(self, now_mono: float) -> None:
        """One ``ws_frame_rejected`` event per interval at most, with the count and the last reason."""
        if (
            not self._rejections_pending
            or now_mono - self._last_rejection_event_mono < self._rejection_interval_s
        ):
            return
        self._last_rejection_event_mono = now_mono
        count, self._rejections_pending = self._rejections_pending, 0
        self.event(
            "ws_frame_rejected",
            "WARNING",
            f"{count} websocket frame(s) rejected",
            count=count,
            last_reason=self._last_rejection,
        )
