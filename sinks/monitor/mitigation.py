"""The mitigation level: a pure, clock-free state machine fed with timestamped signal samples.

Signals: CPU %, memory %, disk write latency (ms), event lag (s). Thresholds are the DESIGN table
(``[monitor]``): level 1 at CPU >= 80 %, memory >= 85 %, disk latency >= 500 ms, lag >= 2 s; level 2
at 90 %, 95 %, 1000 ms, 5 s.

Precisely:

* A signal is **sustained at level L** at time t when every known sample of it since
  ``above_since`` is at or above L's threshold, consecutive known samples are at most
  ``max_gap_s`` apart (no hole in the evidence), the latest known sample is at most ``max_gap_s``
  old, and that run spans at least ``sustain_s``. Unknown (``None``) values are no evidence either
  way: they neither break a run nor extend it.
* The level **rises** to the highest L at which any signal is sustained (0 -> 2 in one change when
  the level-2 condition itself has been sustained).
* The level is **clear at L** when every known signal of a sample is below L's threshold; it
  **falls** from c only after it has been clear at c for ``clear_s`` (same gap rule), and then to the
  highest l < c that has *not* been clear at l for ``clear_s`` (hysteresis: a load in the level-1
  band after level 2 leaves level 1, not 0).

Mitigation lowers sampling frequency only; it never reduces slot coverage (the core acts on it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from observer.config import MonitorConfig

SIGNALS = ("cpu_pct", "memory_pct", "disk_latency_ms", "lag_s")
_UNITS = {"cpu_pct": "%", "memory_pct": "%", "disk_latency_ms": " ms", "lag_s": " s"}
MAX_LEVEL = 2


@dataclass(frozen=True, slots=True)
class SignalSample:
    """One observation of every signal at `at`; ``None`` = unknown (not zero)."""

    at: datetime
    cpu_pct: float | None = None
    memory_pct: float | None = None
    disk_latency_ms: float | None = None
    lag_s: float | None = None

    def value(self, signal: str) -> float | None:
        v: float | None = getattr(self, signal)
        return v


@dataclass(frozen=True, slots=True)
class LevelChange:
    old: int
    new: int
    at: datetime
    reasons: list[str]


@dataclass(frozen=True, slots=True)
class Thresholds:
    """``by_level[L][signal]`` = the threshold of `signal` for level L (1-based)."""

    by_level: dict[int, dict[str, float]]

    @classmethod
    def from_config(cls, cfg: MonitorConfig) -> Thresholds:
        return cls(
            {
                1: {
                    "cpu_pct": cfg.cpu_level1_pct,
                    "memory_pct": cfg.memory_level1_pct,
                    "disk_latency_ms": cfg.disk_latency_level1_ms,
                    "lag_s": cfg.lag_level1_s,
                },
                2: {
                    "cpu_pct": cfg.cpu_level2_pct,
                    "memory_pct": cfg.memory_level2_pct,
                    "disk_latency_ms": cfg.disk_latency_level2_ms,
                    "lag_s": cfg.lag_level2_s,
                },
            }
        )


@dataclass(slots=True)
class ConditionRun:
    """A run of consecutive samples meeting a condition (or None when broken)."""

    since: datetime | None = None
    last: datetime | None = None

    def feed(self, at: datetime, holds: bool, max_gap_s: float) -> None:
        if not holds:
            self.since = None
            self.last = at
            return
        if self.since is None or self.last is None or (at - self.last).total_seconds() > max_gap_s:
            self.since = at
        self.last = at

    def held_for(self, now: datetime, max_gap_s: float) -> float:
        """Seconds the condition has held, 0 when broken or stale."""
        if self.since is None or self.last is None or (now - self.last).total_seconds() > max_gap_s:
            return 0.0
        return (self.last - self.since).total_seconds()


@dataclass(slots=True)
class MitigationState:
    """Feed `observe` with samples in time order; it returns a `LevelChange` when the level moves."""

    thresholds: Thresholds
    sustain_s: float
    clear_s: float
    max_gap_s: float
    level: int = 0
    _above: dict[tuple[str, int], ConditionRun] = field(default_factory=dict)
    _clear: dict[int, ConditionRun] = field(default_factory=dict)
    _latest: SignalSample | None = None

    @classmethod
    def from_config(cls, cfg: MonitorConfig) -> MitigationState:
        return cls(
            Thresholds.from_config(cfg),
            sustain_s=cfg.sustain_s,
            clear_s=cfg.clear_s,
            max_gap_s=max(3 * cfg.sample_interval_s, cfg.stats_stale_s),
        )

    def observe(self, sample: SignalSample) -> LevelChange | None:
        self._latest = sample
        for level in range(1, MAX_LEVEL + 1):
            clear = True
            for signal in SIGNALS:
                value = sample.value(signal)
                if value is None:
                    continue
                above = value >= self.thresholds.by_level[level][signal]
                clear = clear and not above
                self._above.setdefault((signal, level), ConditionRun()).feed(sample.at, above, self.max_gap_s)
            self._clear.setdefault(level, ConditionRun()).feed(sample.at, clear, self.max_gap_s)
        return self._decide(sample.at)

    def _sustained(self, level: int, now: datetime) -> list[str]:
        return [
            signal
            for signal in SIGNALS
            if self._above.get((signal, level), ConditionRun()).held_for(now, self.max_gap_s)
            >= self.sustain_s
        ]

    def _cleared(self, level: int, now: datetime) -> bool:
        return self._clear.get(level, ConditionRun()).held_for(now, self.max_gap_s) >= self.clear_s

    def _decide(self, now: datetime) -> LevelChange | None:
        for level in range(MAX_LEVEL, self.level, -1):
            signals = self._sustained(level, now)
            if signals:
                reasons = [self._reason(s, level, "for") for s in signals]
                return self._move(level, now, reasons)
        if self.level > 0 and self._cleared(self.level, now):
            target = self.level - 1
            while target > 0 and self._cleared(target, now):
                target -= 1
            clear_of = target + 1
            reasons = [f"every signal below its level-{clear_of} threshold for >= {self.clear_s:g} s"]
            if target > 0:
                reasons += [self._reason(s, target, "still at") for s in self._at_or_above(target)]
            return self._move(target, now, reasons)
        return None

    def _at_or_above(self, level: int) -> list[str]:
        if self._latest is None:
            return []
        out = []
        for signal in SIGNALS:
            value = self._latest.value(signal)
            if value is not None and value >= self.thresholds.by_level[level][signal]:
                out.append(signal)
        return out

    def _reason(self, signal: str, level: int, how: str) -> str:
        value = self._latest.value(signal) if self._latest is not None else None
        threshold = self.thresholds.by_level[level][signal]
        unit = _UNITS[signal]
        shown = "?" if value is None else f"{value:.4g}"
        if how == "for":
            return f"{signal} {shown}{unit} >= {threshold:g}{unit} for >= {self.sustain_s:g} s"
        return f"{signal} {shown}{unit} still >= {threshold:g}{unit}"

    def _move(self, new: int, now: datetime, reasons: list[str]) -> LevelChange:
        change = LevelChange(old=self.level, new=new, at=now, reasons=reasons)
        self.level = new
        return change

    def reasons_now(self) -> list[str]:
        """Why the current level holds (for the periodic re-publication)."""
        if self.level == 0:
            return []
        return [self._reason(s, self.level, "still at") for s in self._at_or_above(self.level)]
