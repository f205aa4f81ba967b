"""System events: ``SystemEvent`` and the other archived notices (``GapMarker``, ``OverflowEntry``,
``MetricsSnapshot``), and the typed events one process acts on (``FeedStatus``, ``UniverseBuilt``,
``DayAnomalous``, ``SweepSummary``), each archived as the ``SystemEvent`` its ``event()`` returns."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

import msgspec

from observer.schema.base import DetailValue, Severity, _Msg
from observer.universe import UniverseSnapshot


class SystemEvent(_Msg, frozen=True, tag="system_event"):
    """Anything the system noticed. ``type`` names it (worker_state, rejection, reconnect, ...)."""

    record_id: str
    type: str
    severity: Severity
    at: datetime
    source: str  # worker / component that noticed it
    provider: str = ""
    message: str = ""
    details: dict[str, DetailValue] = {}


class GapMarker(_Msg, frozen=True, tag="gap_marker"):
    """Proof of what was missed: exact start, end and cause. Gaps are never back-filled."""

    record_id: str
    track: Literal["swing", "scalp", "raw", "bus", "system"]
    provider: str
    market: str
    symbols: list[str]
    start: datetime
    end: datetime
    reason: str
    detected_by: str
    details: dict[str, DetailValue] = {}
    type: Literal["gap_marker"] = "gap_marker"


class OverflowEntry(_Msg, frozen=True, tag="overflow"):
    """A Track B candidate that found no free slot."""

    record_id: str
    at: datetime
    provider: str
    symbol: str
    rule: str
    score: float
    priority: int


class MetricsSnapshot(_Msg, frozen=True, tag="metrics"):
    record_id: str
    at: datetime
    track_a_collection_rate: float | None
    track_b_collection_rate: float | None
    ws_reconnect_count: int
    slot_utilization: float
    mitigation_level: int
    disk_usage_percent: float
    cpu_usage_percent: float
    memory_usage_percent: float
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    records: dict[str, int] = {}
    gaps: dict[str, int] = {}


# --------------------------------------------------------------------------- typed system events
# Each says one thing another process acts on; each is archived as the SystemEvent its event()
# returns (the archive's ``type`` names stay what they were).

FeedState = Literal["disconnected", "failure"]
_FEED_EVENT_TYPE: dict[str, str] = {"disconnected": "ws_disconnected", "failure": "ws_failure"}


class FeedStatus(_Msg, frozen=True, tag="feed_status"):
    """The WebSocket feed's state as its collector sees it.

    ``disconnected``: a session failed or an attempt did not come up; the feed is down from ``at``.
    ``failure``: down for longer than ``track_b.pause_after_failure_s`` (CRITICAL): scalp recording
    pauses until data flows again. A data frame arriving is what says the feed is back.

    With several app keys (one WebSocket session each) ``key_index`` names the session and
    ``symbols`` what it carried: only those symbols are down. ``key_index`` 0 is the whole feed.
    """

    record_id: str
    state: FeedState
    at: datetime
    source: str
    provider: str
    severity: Severity
    message: str
    details: dict[str, DetailValue] = {}
    key_index: int = 0
    symbols: list[str] = []

    def event(self) -> SystemEvent:
        return SystemEvent(
            record_id=self.record_id,
            type=_FEED_EVENT_TYPE[self.state],
            severity=self.severity,
            at=self.at,
            source=self.source,
            provider=self.provider,
            message=self.message,
            details=self.details,
        )


class UniverseBuilt(_Msg, frozen=True, tag="universe_built"):
    """A market's universe snapshot for ``day`` was written (the core reloads the day's universe).
    It carries the snapshot, so a core on another host (its own ``universe_dir``) writes it there."""

    record_id: str
    at: datetime
    source: str
    provider: str
    market: str
    day: date
    symbols: int
    path: str
    snapshot: UniverseSnapshot | None = None

    @property
    def message(self) -> str:
        return f"{self.market} universe for {self.day}: {self.symbols} symbols"

    def event(self) -> SystemEvent:
        return SystemEvent(
            record_id=self.record_id,
            type="universe_built",
            severity="INFO",
            at=self.at,
            source=self.source,
            provider=self.provider,
            message=self.message,
            details={
                "market": self.market,
                "day": self.day.isoformat(),
                "symbols": self.symbols,
                "path": self.path,
            },
        )


class DayAnomalous(_Msg, frozen=True, tag="day_anomalous"):
    """``day`` (KST trading date) was anomalous: retention keeps its raw/ longer."""

    record_id: str
    at: datetime
    source: str
    provider: str
    day: date
    severity: Severity
    reasons: list[str]

    @property
    def message(self) -> str:
        return f"{self.day.isoformat()} is an anomalous day: " + "; ".join(self.reasons)

    def event(self) -> SystemEvent:
        return SystemEvent(
            record_id=self.record_id,
            type="day_anomalous",
            severity=self.severity,
            at=self.at,
            source=self.source,
            provider=self.provider,
            message=self.message,
            details={"day": self.day.isoformat(), "reasons": list(self.reasons)},
        )


class SweepSummary(_Msg, frozen=True, tag="sweep_summary"):
    """A Track A sweep is over: what it recorded (the core ranks its symbols' activity then)."""

    record_id: str
    at: datetime
    source: str
    provider: str
    severity: Severity
    sweep_id: str
    duration_s: float
    calls: int
    universe: int
    recorded: int
    failed: int
    collection_rate: float
    rate_limited: int = 0
    fallback_symbols: int = 0
    wrong_code: int = 0  # answers for another code than the one asked for (rejected)
    errors_by_code: list[str] = []  # "<code>=<count>"

    @property
    def message(self) -> str:
        return f"sweep {self.sweep_id}: {self.collection_rate:.2%}"

    def event(self) -> SystemEvent:
        details: dict[str, DetailValue] = {
            name: getattr(self, name)
            for name in (
                "sweep_id", "duration_s", "calls", "universe", "recorded", "failed", "collection_rate",
                "rate_limited", "fallback_symbols", "wrong_code",
            )
        }  # fmt: skip
        details["errors_by_code"] = list(self.errors_by_code)
        return SystemEvent(
            record_id=self.record_id,
            type="sweep_summary",
            severity=self.severity,
            at=self.at,
            source=self.source,
            provider=self.provider,
            message=self.message,
            details=details,
        )


TypedEvent = FeedStatus | UniverseBuilt | DayAnomalous | SweepSummary
_FEED_STATE_OF = {v: k for k, v in _FEED_EVENT_TYPE.items()}


def typed_from_event(ev: SystemEvent) -> SystemEvent | TypedEvent:
    """The typed message an archived `SystemEvent` was made from (the inverse of their ``event()``),
    to send a recorded day again; any other event, or one whose details do not fit, as it is."""
    head = {"record_id": ev.record_id, "at": ev.at, "source": ev.source, "provider": ev.provider}
    try:
        match ev.type:
            case "ws_disconnected" | "ws_failure":
                state = _FEED_STATE_OF[ev.type]
                fields = {**head, "state": state, "severity": ev.severity, "message": ev.message}
                return msgspec.convert({**fields, "details": ev.details}, FeedStatus)
            case "universe_built":
                return msgspec.convert({**ev.details, **head}, UniverseBuilt, strict=False)
            case "day_anomalous":
                day = ev.details.get("day") or ev.at.date().isoformat()
                reasons = ev.details.get("reasons") or [ev.message]
                fields = {**head, "severity": ev.severity, "day": day, "reasons": reasons}
                return msgspec.convert(fields, DayAnomalous, strict=False)
            case "sweep_summary":
                return msgspec.convert(
                    {**ev.details, **head, "severity": ev.severity}, SweepSummary, strict=False
                )
    except msgspec.ValidationError:
        pass
    return ev
