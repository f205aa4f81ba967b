"""The 5-minute metrics line: one `MetricsSnapshot` per ``monitor.metrics_interval_s`` (in the
injected clock's time, aligned to multiples of the interval), built from what the monitor saw
during that interval.

* rates: Track A = the latest sweep's recorded / universe; Track B = samples written / expected
  during the interval (``None`` when nothing was expected);
* CPU / memory: the mean of the interval's samples; disk usage: the latest sample;
* latency p50/p95/p99: nearest-rank percentiles of the core's ``event_lag_s`` values received in
  the interval (``None`` without any);
* records / gaps: per track, counted during the interval (from the writer's ``records.<track>``
  and the core's ``gaps.<track>`` counters).

The record id is ``metrics-<provider>-<interval start>``: a monitor restarted within an interval
cannot write the same interval twice (the writer skips committed ids).

`disk_usage_pct` is the disk probe (the worker's samples and the status view).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import msgspec
import psutil

from observer import record_ids
from observer.clock import KST
from observer.config import Config, track_b_capacity
from observer.schema import CoreStats, MetricsSnapshot, WriterStats
from sinks.monitor.stats import TRACKS, StatsBook


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile (``pct`` in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def interval_start(at: datetime, interval_s: float) -> datetime:
    epoch = at.timestamp()
    return datetime.fromtimestamp(epoch - (epoch % interval_s), KST)


@dataclass(slots=True)
class MetricsWindow:
    cfg: Config
    book: StatsBook
    started: datetime | None = None
    cpu: list[float] = field(default_factory=list)
    memory: list[float] = field(default_factory=list)
    disk_usage_pct: float | None = None
    lag_ms: list[float] = field(default_factory=list)
    _base: dict[tuple[type[msgspec.Struct], str], float] = field(default_factory=dict)

    @property
    def interval_s(self) -> float:
        return self.cfg.monitor.metrics_interval_s

    def _counted(self) -> list[tuple[type[msgspec.Struct], str]]:
        keys: list[tuple[type[msgspec.Struct], str]] = [
            (CoreStats, "samples_expected"),
            (CoreStats, "samples_written"),
        ]
        keys += [(WriterStats, f"written.{t}") for t in TRACKS]
        keys += [(CoreStats, f"gap_markers.{t}/") for t in TRACKS]  # prefixes: by track, any cause
        return keys

    def begin(self, at: datetime) -> None:
        self.started = interval_start(at, self.interval_s)
        self.cpu.clear()
        self.memory.clear()
        self.lag_ms.clear()
        self._base = {}
        for key in self._counted():
            total = self._total(key)
            if total is not None:
                self._base[key] = total

    def add_sample(
        self, cpu_pct: float | None, memory_pct: float | None, disk_usage_pct: float | None
    ) -> None:
        if cpu_pct is not None:
            self.cpu.append(cpu_pct)
        if memory_pct is not None:
            self.memory.append(memory_pct)
        if disk_usage_pct is not None:
            self.disk_usage_pct = disk_usage_pct

    def add_lag(self, lag_s: float) -> None:
        if len(self.lag_ms) < 100_000:  # bounded: ~1 value per core stats message
            self.lag_ms.append(lag_s * 1000)

    def due(self, at: datetime) -> bool:
        return self.started is not None and at >= self.started + timedelta(seconds=self.interval_s)

    def _total(self, key: tuple[type[msgspec.Struct], str]) -> float | None:
        kind, name = key
        return self.book.total_with_prefix(kind, name) if name.endswith("/") else self.book.total(kind, name)

    def _delta(self, key: tuple[type[msgspec.Struct], str]) -> float | None:
        total = self._total(key)
        if total is None:
            return None
        return total - self._base.get(key, 0.0)

    def build(
        self,
        at: datetime,
        *,
        track_a_rate: float | None,
        reconnects_today: int | None,
        slots_used: int,
        level: int,
    ) -> MetricsSnapshot:
        """The snapshot of the interval that just ended (stamped with its end); a new one begins."""
        assert self.started is not None
        end = self.started + timedelta(seconds=self.interval_s)
        expected = self._delta((CoreStats, "samples_expected"))
        written = self._delta((CoreStats, "samples_written"))
        b_rate = None if not expected or written is None else min(written / expected, 1.0)
        records = {t: int(d) for t in TRACKS if (d := self._delta((WriterStats, f"written.{t}"))) is not None}
        gaps = {t: int(d) for t in TRACKS if (d := self._delta((CoreStats, f"gap_markers.{t}/"))) is not None}
        provider = self.cfg.archive_provider
        snapshot = MetricsSnapshot(
            record_id=record_ids.metrics(provider, self.started),
            at=end,
            track_a_collection_rate=track_a_rate,
            track_b_collection_rate=b_rate,
            ws_reconnect_count=reconnects_today or 0,
            slot_utilization=slots_used / capacity if (capacity := track_b_capacity(self.cfg)) else 0.0,
            mitigation_level=level,
            disk_usage_percent=self.disk_usage_pct if self.disk_usage_pct is not None else 0.0,
            cpu_usage_percent=_mean(self.cpu),
            memory_usage_percent=_mean(self.memory),
            latency_p50_ms=percentile(self.lag_ms, 50),
            latency_p95_ms=percentile(self.lag_ms, 95),
            latency_p99_ms=percentile(self.lag_ms, 99),
            records=records,
            gaps=gaps,
        )
        self.begin(at)
        return snapshot


def _mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 2) if values else 0.0


def disk_usage_pct(path: Path) -> float | None:
    """Usage of the filesystem holding `path` (its nearest existing parent); None if unreadable."""
    probe = path.resolve()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return float(psutil.disk_usage(str(probe)).percent)
    except OSError:
        return None
