"""Rejection and guard reporting: counted always, reported as system events, rate-limited per rule.

Per (event type, rule): the first finding becomes an event at once; later ones within
``core.rejection_event_interval_s`` are only counted, and when the interval has passed one summary
event carries their count and the last reason. Never silent, never a flood.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from observer.clock import Clock
from observer.core.rules import Finding
from observer.schema import DetailValue, SystemEvent

EventFactory = Callable[[str, str, str, dict[str, DetailValue]], SystemEvent]


@dataclass(slots=True)
class _Window:
    last_event_s: float
    suppressed: int = 0
    last: Finding | None = None
    symbols: set[str] | None = None


class RejectionReporter:
    """`report` returns the event to emit now (or None: counted into the next summary)."""

    def __init__(self, interval_s: float, clock: Clock, make_event: EventFactory):
        self._interval_s = interval_s
        self._clock = clock
        self._make_event = make_event
        self._windows: dict[tuple[str, str], _Window] = {}
        self.counts: Counter[str] = Counter()  # "rejection.<rule>" / "guard.<rule>"

    def report(self, type_: str, finding: Finding) -> SystemEvent | None:
        self.counts[f"{type_}.{finding.rule}"] += 1
        key = (type_, finding.rule)
        now = self._clock.monotonic()
        window = self._windows.get(key)
        if window is None or (window.suppressed == 0 and now - window.last_event_s >= self._interval_s):
            self._windows[key] = _Window(last_event_s=now)
            return self._event(type_, finding, count=1)
        window.suppressed += 1
        window.last = finding
        if window.symbols is None:
            window.symbols = set()
        if len(window.symbols) < 20:
            window.symbols.add(finding.symbol)
        return None

    def due(self) -> list[SystemEvent]:
        """Summary events whose interval has passed (call periodically)."""
        now = self._clock.monotonic()
        out: list[SystemEvent] = []
        for (type_, _rule), window in self._windows.items():
            if (
                window.suppressed
                and window.last is not None
                and now - window.last_event_s >= self._interval_s
            ):
                out.append(
                    self._event(type_, window.last, count=window.suppressed, symbols=window.symbols or set())
                )
                window.last_event_s = now
                window.suppressed = 0
                window.symbols = None
        return out

    def _event(
        self, type_: str, finding: Finding, *, count: int, symbols: set[str] | None = None
    ) -> SystemEvent:
        severity = "WARNING" if type_ == "rejection" else "INFO"
        details: dict[str, DetailValue] = {
            "rule": finding.rule,
            "reason": finding.reason,
            "symbol": finding.symbol,
            "count": count,
        }
        if symbols:
            details["symbols"] = sorted(symbols)
        message = f"{type_} {finding.rule}: {finding.reason}"
        if symbols is not None:
            message = f"{type_} {finding.rule}: {count} more since the last event; last: {finding.reason}"
        return self._make_event(type_, severity, message, details)
