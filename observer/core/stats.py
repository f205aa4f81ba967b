"""The core's counters, published as `observer.schema.CoreStats` on ``stats.observer``.

Counters: records by track, gap markers by track/cause, rejections and guard findings by rule,
ingest and sampler figures. Gauges: Track B collection rate (durable samples / expected windows,
overall and per slot), Track A collection rate of the last complete sweep (symbols recorded /
universe size) and the mark of the newest sweep seen (the monitor's swing freshness), event lag
(source receive time -> writer ack) over the last interval, and back-pressure (unacked, held).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter, OrderedDict
from datetime import datetime
from typing import Any

from observer.clock import KST
from observer.schema import LAG_BUCKETS_S, CoreStats, GapMarker, SlotProgress
from observer.sessions import sweep_mark_of


class CoreCounters:
    def __init__(self) -> None:
        self.records: Counter[str] = Counter()
        self.gap_markers: Counter[str] = Counter()
        self.frames_parse_error = 0
        self.samples_paused = 0
        self.bus_gaps = 0
        self.samples_written: Counter[str] = Counter()
        self._sweeps: OrderedDict[str, set[str]] = OrderedDict()
        self.last_sweep_rate: float | None = None
        self.last_sweep_id = ""
        self.latest_mark_s: float | None = None  # the newest sweep mark any snapshot came from
        self._lag_sum_s = 0.0
        self._lag_max_s = 0.0
        self._lag_n = 0
        # cumulative over the run: the Prometheus histogram (one count per LAG_BUCKETS_S edge + overflow)
        self.lag_buckets = [0] * (len(LAG_BUCKETS_S) + 1)
        self.lag_total_s = 0.0

    def record(self, track: str) -> None:
        self.records[track] += 1

    def gap(self, marker: GapMarker) -> None:
        self.gap_markers[f"{marker.track}/{marker.reason.split(':', 1)[0]}"] += 1

    def sweep_symbol(self, sweep_id: str, symbol: str, universe_size: int) -> None:
        if sweep_id not in self._sweeps:
            mark = sweep_mark_of(sweep_id)
            if mark is not None and (self.latest_mark_s is None or mark.timestamp() > self.latest_mark_s):
                self.latest_mark_s = mark.timestamp()
            if self._sweeps:
                done_id, done = next(reversed(self._sweeps.items()))
                self.last_sweep_id = done_id
                self.last_sweep_rate = len(done) / universe_size if universe_size else None
            self._sweeps[sweep_id] = set()
            while len(self._sweeps) > 3:
                self._sweeps.popitem(last=False)
        self._sweeps[sweep_id].add(symbol)

    def lag(self, seconds: float) -> None:
        self._lag_sum_s += seconds
        self._lag_max_s = max(self._lag_max_s, seconds)
        self._lag_n += 1
        self.lag_buckets[bisect_left(LAG_BUCKETS_S, seconds)] += 1
        self.lag_total_s += seconds

    def snapshot(
        self, at: datetime, *, expected: dict[str, int], slot_of: dict[str, int], **figures: Any
    ) -> CoreStats:
        """The stats message; `figures` are the other `CoreStats` fields the worker knows."""
        total_expected = sum(expected.values())
        total_written = sum(self.samples_written.values())
        lag_n = self._lag_n
        stats = CoreStats(
            worker="observer",
            at=at,
            records=dict(self.records),
            gap_markers=dict(self.gap_markers),
            frames_parse_error=self.frames_parse_error,
            samples_paused=self.samples_paused,
            bus_gaps=self.bus_gaps,
            samples_expected=total_expected,
            samples_written=total_written,
            track_b_collection_rate=min(1.0, total_written / total_expected) if total_expected else None,
            slots=[
                SlotProgress(
                    slot_number=n,
                    symbol=symbol,
                    expected=expected.get(symbol, 0),
                    written=self.samples_written.get(symbol, 0),
                )
                for symbol, n in sorted(slot_of.items(), key=lambda item: item[1])
            ],
            track_a_collection_rate=self.last_sweep_rate,
            track_a_sweep_at=(
                None if self.latest_mark_s is None else datetime.fromtimestamp(self.latest_mark_s, KST)
            ),
            event_lag_mean_s=self._lag_sum_s / lag_n if lag_n else None,
            event_lag_max_s=self._lag_max_s if lag_n else None,
            lag_buckets=list(self.lag_buckets),
            lag_sum_s=self.lag_total_s,
            **figures,
        )
        self._lag_sum_s = self._lag_max_s = 0.0
        self._lag_n = 0
        return stats
