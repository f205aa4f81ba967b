"""The core's counters, published as `WorkerStats` on ``stats.observer``.

Counters: records by track, rejections and guard findings by rule, ingest and sampler figures.
Gauges: Track B collection rate (durable samples / expected windows, overall and per slot),
Track A collection rate of the last complete sweep (symbols recorded / universe size) and the mark
of the newest sweep seen (``track_a.sweep_at_s``, epoch s: the monitor's swing freshness), event lag
(source receive time -> writer ack) over the last interval, and back-pressure (unacked, held).
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from datetime import datetime

from observer.schema import WorkerStats
from observer.sessions import sweep_mark_of


class CoreStats:
    def __init__(self) -> None:
        self.counters: Counter[str] = Counter()
        self.samples_written: Counter[str] = Counter()
        self._sweeps: OrderedDict[str, set[str]] = OrderedDict()
        self.last_sweep_rate: float | None = None
        self.last_sweep_id = ""
        self.latest_mark_s: float | None = None  # the newest sweep mark any snapshot came from
        self._lag_sum_s = 0.0
        self._lag_max_s = 0.0
        self._lag_n = 0

    def record(self, track: str) -> None:
        self.counters[f"records.{track}"] += 1

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

    def snapshot(
        self,
        at: datetime,
        *,
        expected: dict[str, int],
        slot_of: dict[str, int],
        extra_counters: dict[str, int],
        gauges: dict[str, float],
    ) -> WorkerStats:
        out_gauges = dict(gauges)
        total_expected = sum(expected.values())
        total_written = sum(self.samples_written.values())
        out_gauges["samples_expected"] = float(total_expected)
        out_gauges["samples_written"] = float(total_written)
        if total_expected:
            out_gauges["track_b_collection_rate"] = min(1.0, total_written / total_expected)
        for symbol, n in slot_of.items():
            out_gauges[f"slot.{n:02d}.expected"] = float(expected.get(symbol, 0))
            out_gauges[f"slot.{n:02d}.written"] = float(self.samples_written.get(symbol, 0))
        if self.last_sweep_rate is not None:
            out_gauges["track_a_collection_rate"] = self.last_sweep_rate
        if self.latest_mark_s is not None:
            out_gauges["track_a.sweep_at_s"] = self.latest_mark_s  # swing freshness (monitor)
        if self._lag_n:
            out_gauges["event_lag_mean_s"] = self._lag_sum_s / self._lag_n
            out_gauges["event_lag_max_s"] = self._lag_max_s
        self._lag_sum_s = self._lag_max_s = 0.0
        self._lag_n = 0
        counters = {k: float(v) for k, v in self.counters.items()}
        counters.update({k: float(v) for k, v in extra_counters.items()})
        return WorkerStats(worker="observer", at=at, counters=counters, gauges=out_gauges)
