"""What the monitor knows of the other workers: their latest gauges (with age) and their counters
turned into monotonic totals.

Tolerance rules: a name never seen is unknown (``None``), a gauge older than ``stale_s`` (real
seconds) is unknown, and a counter that goes down means its producer restarted (the new value
is all new). The first value of a counter seen by this monitor is its baseline (delta 0): the
monitor cannot know how much of it happened before it started.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from observer.schema import WorkerStats

# -- the stat names (see the package docstring for their meaning)
CORE = "observer"
WRITER = "writer"
WS = "ws-collector"

B_EXPECTED = "track_b.samples_expected"
B_WRITTEN = "track_b.samples_written"
A_RECORDED = "track_a.sweep_recorded"
A_UNIVERSE = "track_a.sweep_universe"
A_SWEEP_AT = "track_a.sweep_at_s"
B_OLDEST_AGE = "track_b.oldest_sample_age_s"
B_SILENT = "track_b.silent_symbols"
B_SLOTS_USED = "track_b.slots_used"
EVENT_LAG = "event_lag_s"
A_OPEN = "session.track_a_open"
B_OPEN = "session.track_b_open"
FSYNC_MS = "fsync_latency_ms"
DISK_ERROR = "disk_error"
WS_RECONNECTS = "ws.reconnects"
WS_CONNECTED = "ws.connected"
WS_SUBSCRIBED = "ws.subscribed"
WS_FRAME_AGE = "ws.last_frame_age_s"
A_RATE = "track_a.rate"
WS_IN_SESSION = "in_session"
SLOT_PREFIX = "slot."
TRACKS = ("swing", "scalp", "raw", "system")

# The names the producers publish today, read when the canonical name is absent (first match wins).
GAUGE_ALIASES: dict[str, dict[str, tuple[str, ...]]] = {
    CORE: {
        B_SLOTS_USED: ("slots_used",),
        EVENT_LAG: ("event_lag_max_s",),
        A_RATE: ("track_a_collection_rate",),
    },
    WRITER: {FSYNC_MS: ("fsync_p99_ms", "fsync_last_ms")},
    WS: {
        WS_CONNECTED: ("connected",),
        WS_SUBSCRIBED: ("subscribed",),
        WS_FRAME_AGE: ("last_frame_age_s",),
        B_SILENT: ("silent_symbols", "silent"),
    },
}
# counters published under another name, or as cumulative gauges
COUNTER_ALIASES: dict[str, dict[str, tuple[str, ...]]] = {
    CORE: {B_EXPECTED: ("samples_expected",), B_WRITTEN: ("samples_written",)},
    WRITER: {f"records.{t}": (f"written_{t}",) for t in TRACKS},
    WS: {WS_RECONNECTS: ("reconnects",)},
}


def normalise(stats: WorkerStats) -> tuple[dict[str, float], dict[str, float]]:
    """(gauges, counters) under the canonical names, aliases filled in where the canonical is absent."""
    gauges = dict(stats.gauges)
    counters = dict(stats.counters)
    for canonical, aliases in GAUGE_ALIASES.get(stats.worker, {}).items():
        if canonical not in gauges:
            for alias in aliases:
                if alias in gauges:
                    gauges[canonical] = gauges[alias]
                    break
    for canonical, aliases in COUNTER_ALIASES.get(stats.worker, {}).items():
        if canonical not in counters:
            for alias in aliases:
                value = counters.get(alias, gauges.get(alias))
                if value is not None:
                    counters[canonical] = value
                    break
    return gauges, counters


@dataclass(slots=True)
class _Gauge:
    value: float
    at_mono: float


@dataclass(slots=True)
class _Counter:
    last: float
    total: float


class StatsBook:
    """Latest `WorkerStats` per worker. Feed it from the event loop; query it anywhere in that thread."""

    def __init__(self, stale_s: float, monotonic: Callable[[], float] = time.monotonic):
        self.stale_s = stale_s
        self._mono = monotonic
        self._gauges: dict[tuple[str, str], _Gauge] = {}
        self._counters: dict[tuple[str, str], _Counter] = {}
        self._heard: dict[str, float] = {}
        self.resets = 0

    def feed(self, stats: WorkerStats) -> dict[str, float]:
        """Take in one stats message; returns its gauges under the canonical names."""
        now = self._mono()
        worker = stats.worker
        self._heard[worker] = now
        gauges, counters = normalise(stats)
        for name, value in gauges.items():
            self._gauges[(worker, name)] = _Gauge(float(value), now)
        for name, value in counters.items():
            key = (worker, name)
            counter = self._counters.get(key)
            if counter is None:
                self._counters[key] = _Counter(last=value, total=0.0)
                continue
            if value >= counter.last:
                counter.total += value - counter.last
            else:
                counter.total += value
                self.resets += 1
            counter.last = value
        return gauges

    def gauge(self, worker: str, name: str) -> float | None:
        g = self._gauges.get((worker, name))
        if g is None or self._mono() - g.at_mono > self.stale_s:
            return None
        return g.value

    def gauges_with_prefix(self, worker: str, prefix: str) -> dict[str, float]:
        """Every fresh gauge of `worker` whose name starts with `prefix`."""
        now = self._mono()
        return {
            name: g.value
            for (w, name), g in self._gauges.items()
            if w == worker and name.startswith(prefix) and now - g.at_mono <= self.stale_s
        }

    def total(self, worker: str, name: str) -> float | None:
        """Everything counted since this monitor first saw the counter; None if never seen."""
        c = self._counters.get((worker, name))
        return None if c is None else c.total

    def heard_within(self, worker: str) -> bool:
        at = self._heard.get(worker)
        return at is not None and self._mono() - at <= self.stale_s

    def workers(self) -> list[str]:
        return sorted(self._heard)


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
