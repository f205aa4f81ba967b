"""Clocks. Time is explicit: every datetime here is timezone-aware; market logic uses KST.

A `Clock` answers `now()` (aware datetime) and `monotonic()`; workers never call
`datetime.now()` themselves, so tests inject a `ManualClock` and demos a `SessionClock`.

`SessionClock` maps real time onto a virtual trading day: ``virtual = start_at + (real - anchor) * speed``.
The simulator and every pipeline process build it from the same three numbers (the supervisor
exports the anchor in ``OBSERVER_CLOCK_ANCHOR``), so the simulated market is open whenever a demo
runs and tests can run a session faster than real time.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Protocol

KST = timezone(timedelta(hours=9), "KST")
ANCHOR_ENV = "OBSERVER_CLOCK_ANCHOR"


class Clock(Protocol):
    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...


class SystemClock:
    """Wall-clock time in KST."""

    def now(self) -> datetime:
        return datetime.now(KST)

    def monotonic(self) -> float:
        return time.monotonic()


class SessionClock:
    """Virtual time: ``start_at + (real_now - anchor_epoch_s) * speed`` (KST)."""

    def __init__(self, start_at: datetime, speed: float = 1.0, anchor_epoch_s: float | None = None):
        if start_at.tzinfo is None:
            raise ValueError("SessionClock start_at must be timezone-aware")
        if speed <= 0:
            raise ValueError(f"SessionClock speed must be > 0, got {speed}")
        self.start_at = start_at.astimezone(KST)
        self.speed = speed
        self.anchor_epoch_s = time.time() if anchor_epoch_s is None else anchor_epoch_s

    def now(self) -> datetime:
        elapsed_s = (time.time() - self.anchor_epoch_s) * self.speed
        return self.start_at + timedelta(seconds=elapsed_s)

    def monotonic(self) -> float:
        return time.monotonic() * self.speed

    def real_seconds(self, virtual_s: float) -> float:
        """How many real seconds pass while `virtual_s` virtual seconds do."""
        return virtual_s / self.speed


class ManualClock:
    """A clock that only moves when a test says so. Thread-safe."""

    def __init__(self, start_at: datetime):
        if start_at.tzinfo is None:
            raise ValueError("ManualClock start_at must be timezone-aware")
        self._now = start_at
        self._mono = 0.0
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += timedelta(seconds=seconds)
            self._mono += seconds

    def set(self, at: datetime) -> None:
        with self._lock:
            delta = (at - self._now).total_seconds()
            self._now = at
            self._mono += max(delta, 0.0)


def kst_now(clock: Clock) -> datetime:
    return clock.now().astimezone(KST)


def kst_date(at: datetime) -> date:
    return at.astimezone(KST).date()


def to_rfc3339(at: datetime) -> str:
    if at.tzinfo is None:
        raise ValueError("naive datetime cannot be written: time must be explicit")
    return at.isoformat()


def ns_to_datetime(ns: int, tz: timezone = KST) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).astimezone(tz)


def datetime_to_ns(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000_000)


def parse_start_at(text: str, today: date) -> datetime:
    """`HH:MM[:SS]` (KST) on `today` — rolled forward to Monday when `today` is a weekend, so a
    demo's virtual session is always a weekday — or a full RFC 3339 timestamp (taken as is)."""
    if "T" in text or " " in text.strip():
        at = datetime.fromisoformat(text)
        if at.tzinfo is None:
            raise ValueError(f"clock start_at {text!r} has no UTC offset")
        return at.astimezone(KST)
    while today.weekday() >= 5:
        today += timedelta(days=1)
    parts = [int(p) for p in text.split(":")]
    while len(parts) < 3:
        parts.append(0)
    return datetime(today.year, today.month, today.day, parts[0], parts[1], parts[2], tzinfo=KST)


def anchor_from_env() -> float | None:
    value = os.environ.get(ANCHOR_ENV)
    return float(value) if value else None
