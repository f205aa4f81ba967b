"""What the monitor knows of the other workers: the latest stats Struct of each (with its age) and
the counters it follows (`COUNTED`) turned into monotonic totals.

Tolerance rules: stats never seen are unknown (``None``), stats older than ``stale_s`` (real
seconds) are unknown, and a counter that goes down means its producer restarted (the new value
is all new). The first value of a counter seen by this monitor is its baseline (delta 0): the
monitor cannot know how much of it happened before it started.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

import msgspec

from observer.schema import CoreStats, WorkerStats, WriterStats, WsCollectorStats

StatsT = TypeVar("StatsT", bound=msgspec.Struct)

# The counter fields whose totals the monitor follows (a dict field counts per key: "written.scalp").
COUNTED: dict[type[msgspec.Struct], tuple[str, ...]] = {
    CoreStats: ("samples_expected", "samples_written", "gap_markers"),
    WriterStats: ("written",),
    WsCollectorStats: ("reconnects",),
}
for _kind, _names in COUNTED.items():
    for _name in _names:
        assert _name in _kind.__struct_fields__, f"{_kind.__name__} has no field {_name!r}"
TRACKS = ("swing", "scalp", "raw", "system")


@dataclass(slots=True)
class _Latest:
    stats: WorkerStats
    at_mono: float


@dataclass(slots=True)
class _Counter:
    last: float
    total: float


class StatsBook:
    """Latest stats per worker kind. Feed it from the event loop; query it anywhere in that thread."""

    def __init__(self, stale_s: float, monotonic: Callable[[], float] = time.monotonic):
        self.stale_s = stale_s
        self._mono = monotonic
        self._latest: dict[type[msgspec.Struct], _Latest] = {}
        self._counters: dict[tuple[type[msgspec.Struct], str], _Counter] = {}
        self.resets = 0

    def feed(self, stats: WorkerStats) -> None:
        """Take in one stats message."""
        now = self._mono()
        kind = type(stats)
        self._latest[kind] = _Latest(stats, now)
        for name in COUNTED.get(kind, ()):
            value = getattr(stats, name)
            if isinstance(value, dict):
                for key, n in value.items():
                    self._count((kind, f"{name}.{key}"), float(n))
            else:
                self._count((kind, name), float(value))

    def _count(self, key: tuple[type[msgspec.Struct], str], value: float) -> None:
        counter = self._counters.get(key)
        if counter is None:
            self._counters[key] = _Counter(last=value, total=0.0)
            return
        if value >= counter.last:
            counter.total += value - counter.last
        else:
            counter.total += value
            self.resets += 1
        counter.last = value

    def latest(self, kind: type[StatsT]) -> StatsT | None:
        """The newest stats of that kind, or None when none came within ``stale_s``."""
        got = self._latest.get(kind)
        if got is None or self._mono() - got.at_mono > self.stale_s:
            return None
        assert isinstance(got.stats, kind)
        return got.stats

    def total(self, kind: type[msgspec.Struct], name: str) -> float | None:
        """Everything counted since this monitor first saw the counter; None if never seen."""
        c = self._counters.get((kind, name))
        return None if c is None else c.total

    def total_with_prefix(self, kind: type[msgspec.Struct], prefix: str) -> float | None:
        """The sum of the totals of `kind`'s counters named ``prefix...``; None if none seen."""
        found = [c.total for (k, name), c in self._counters.items() if k is kind and name.startswith(prefix)]
        return sum(found) if found else None

    def heard_within(self, kind: type[msgspec.Struct]) -> bool:
        return self.latest(kind) is not None

    def workers(self) -> list[str]:
        return sorted(got.stats.worker for got in self._latest.values())


class History:
    """(at, value) samples of a monotonic total, kept for `keep_s`; deltas over a trailing window."""

    def __init__(self, keep_s: float):
        self.keep = timedelta(seconds=keep_s)
        self._points: deque[tuple[datetime, float]] = deque()

    def add(self, at: datetime, value: float) -> None:
        self._points.append((at, value))
        while self._points and at - self._points[0][0] > self.keep:
            self._points.popleft()

    def delta(self, now: datetime, window_s: float, slack_s: float = 0.0) -> float | None:
        """value(now) - value(now - window); None unless the samples span the whole window."""
        if not self._points:
            return None
        start = now - timedelta(seconds=window_s)
        base: float | None = None
        for at, value in self._points:
            if at <= start + timedelta(seconds=slack_s):
                base = value
            else:
                break
        if base is None:
            return None
        return self._points[-1][1] - base

    def delta_so_far(self) -> float | None:
        """value(latest) - value(oldest kept): for display before a full window exists."""
        if len(self._points) < 2:
            return None
        return self._points[-1][1] - self._points[0][1]

    def clear(self) -> None:
        self._points.clear()
