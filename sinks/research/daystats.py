"""The figures of one day, computed from the archive (the same decoding as the export).

* Track A: per sweep, distinct symbols recorded / the day's universe (its snapshot files), target 99.5 %.
* Track B: samples per second; per slot and minute, samples recorded / expected, target 97 %.
  Expected windows follow each symbol's own sampling period (``window_end - window_start``, so a
  mitigation level change is honoured): between two samples ``round(dt / period)`` windows were due.
  The headline rate is sum(recorded) / sum(expected) over symbols, first to last sample, counting
  only the time a symbol held a slot: after the core's ``slot_change`` removed it and until one
  added it back (or ``slots_seeded`` named it), nothing was due.
* Gap markers with causes; metrics lines (event lag p50/p99 = receive -> fsync, mitigation level,
  CPU, memory, disk); backup and retention events about the day (also from the next days' files);
  the day's warnings (WARNING and above, grouped by type).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from observer.clock import KST
from observer.days import day_key
from sinks.research.day import Group, day_groups, read_lines
from sinks.research.errors import NoData
from sinks.research.tables import batches

TRACK_A_TARGET = 0.995
TRACK_B_TARGET = 0.97
ALERT_SEVERITIES = ("WARNING", "ERROR", "CRITICAL")
HOUSEKEEPING_TYPES = (
    "backup_created",
    "backup_verified",
    "backup_failed",
    "backup_unverified",
    "backup_skipped",
)
RETENTION_TYPES = ("retention_deleted", "retention_blocked", "retention_failed")


@dataclass
class Sweep:
    sweep_id: str
    recorded: int
    universe: int

    @property
    def rate(self) -> float:
        return self.recorded / self.universe if self.universe else 0.0


@dataclass
class DayStats:
    day: date
    lines: dict[str, int] = field(
        default_factory=dict
    )  # archive lines per track, as `observer verify` counts
    trades: int = 0  # H0STCNT0 records in the raw/ frames
    universe: int = 0
    sweeps: list[Sweep] = field(default_factory=list)
    scalp_written: int = 0
    scalp_expected: int = 0
    scalp_symbols: int = 0
    per_second: list[tuple[datetime, int]] = field(default_factory=list)
    slot_minutes: dict[int, dict[datetime, tuple[int, int]]] = field(
        default_factory=dict
    )  # slot -> minute -> (w, e)
    gaps: list[dict[str, Any]] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    mitigation_changes: list[dict[str, Any]] = field(default_factory=list)
    housekeeping: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[tuple[str, str, int, str]] = field(
        default_factory=list
    )  # severity, type, count, first message

    @property
    def track_b_rate(self) -> float | None:
        return self.scalp_written / self.scalp_expected if self.scalp_expected else None

    @property
    def worst_sweep(self) -> Sweep | None:
        return min(self.sweeps, key=lambda s: s.rate) if self.sweeps else None

    @property
    def gap_seconds(self) -> float:
        return sum((g["end"] - g["start"]).total_seconds() for g in self.gaps)


def _table(groups: list[Group], table: str, columns: list[str]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {c: [] for c in columns}
    for group in groups:
        if group.table != table:
            continue
        for batch in batches(group):
            for c in columns:
                out[c].extend(batch.column(c).to_pylist())
    return out


def _universe(universe_dir: Path, day: date) -> int:
    total = 0
    for path in sorted(universe_dir.glob(f"{day_key(day)}_*.json")):
        try:
            total += len(json.loads(path.read_text())["symbols"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return total


def _minute(t: datetime) -> datetime:
    return t.astimezone(KST).replace(second=0, microsecond=0)


def compute(data_dir: Path, universe_dir: Path, day: date) -> DayStats:
    groups = day_groups(data_dir, day)
    stats = DayStats(day)
    for family in ("swing", "scalp", "raw", "system", "metrics"):
        files = {p for g in groups for p in g.files if p.relative_to(data_dir).parts[0] == family}
        stats.lines[family] = sum(1 for p in files for _ in read_lines(p))
    stats.trades = sum(b.num_rows for g in groups if g.table == "trades" for b in batches(g))
    _track_a(stats, groups, universe_dir)
    events = _table(groups, "events", ["type", "severity", "at", "source", "message", "details"])
    rows = [dict(zip(events, row, strict=True)) for row in zip(*events.values(), strict=True)]
    _track_b(stats, groups, slot_absences(rows))
    gaps = _table(groups, "gaps", ["track", "market", "symbols", "start", "end", "reason", "detected_by"])
    stats.gaps = [dict(zip(gaps, row, strict=True)) for row in zip(*gaps.values(), strict=True)]
    stats.metrics = [
        dict(zip(m, row, strict=True))
        for m in [_table(groups, "metrics", ["at", "latency_p50_ms", "latency_p99_ms", "mitigation_level",
                                              "cpu_usage_percent", "memory_usage_percent", "disk_usage_percent"])]
        for row in zip(*m.values(), strict=True)
    ]  # fmt: skip
    stats.mitigation_changes = [r for r in rows if r["type"] == "mitigation_change"]
    counted: Counter[tuple[str, str]] = Counter()
    first: dict[tuple[str, str], str] = {}
    for r in rows:
        if r["severity"] in ALERT_SEVERITIES:
            key = (r["severity"], r["type"])
            counted[key] += 1
            first.setdefault(key, r["message"])
    stats.warnings = [(s, t, n, first[(s, t)]) for (s, t), n in sorted(counted.items())]
    stats.housekeeping = _housekeeping(data_dir, day, rows)
    return stats


def _track_a(stats: DayStats, groups: list[Group], universe_dir: Path) -> None:
    swing = _table(groups, "swing", ["sweep_id", "symbol"])
    by_sweep: dict[str, set[str]] = defaultdict(set)
    for sweep_id, symbol in zip(swing["sweep_id"], swing["symbol"], strict=True):
        by_sweep[sweep_id or "?"].add(symbol)
    stats.universe = _universe(universe_dir, stats.day)
    universe = stats.universe or max((len(s) for s in by_sweep.values()), default=0)
    stats.sweeps = [Sweep(k, len(v), universe) for k, v in sorted(by_sweep.items())]


Absences = dict[str, list[tuple[datetime, datetime | None]]]


def slot_absences(rows: list[dict[str, Any]]) -> Absences:
    """Per symbol, the spans it held no slot, from the core's slot events: (removed at, added back
    at or None). Before its first removal a symbol's samples speak for themselves."""
    out: Absences = defaultdict(list)
    slot_rows = [
        r for r in rows if r["source"] == "observer" and r["type"] in ("slot_change", "slots_seeded")
    ]
    for r in sorted(slot_rows, key=lambda r: r["at"]):
        details = json.loads(r["details"]) if isinstance(r["details"], str) else r["details"]
        entered = [e.split(":")[1] for e in details.get("added", []) if e.count(":") >= 1]
        entered += details.get("symbols", [])
        for symbol in entered:
            spans = out.get(symbol)
            if spans and spans[-1][1] is None:
                spans[-1] = (spans[-1][0], r["at"])
        for entry in details.get("removed", []):
            if entry.count(":") >= 1:
                symbol = entry.split(":")[1]
                spans = out[symbol]
                if not spans or spans[-1][1] is not None:
                    spans.append((r["at"], None))
    return dict(out)


def due_windows(
    start: datetime, following: datetime, period_s: float, absent: list[tuple[datetime, datetime | None]]
) -> list[datetime]:
    """The window starts due strictly between two samples of one symbol, except while it held no slot."""
    due = round((following - start).total_seconds() / period_s) - 1
    windows = [start + timedelta(seconds=k * period_s) for k in range(1, due + 1)]
    if not absent:
        return windows
    return [w for w in windows if not any(left <= w and (back is None or w < back) for left, back in absent)]


def _track_b(stats: DayStats, groups: list[Group], absences: Absences) -> None:
    t = _table(groups, "scalp", ["symbol", "slot_number", "window_start", "window_end"])
    per_symbol: dict[str, list[tuple[datetime, float, int]]] = defaultdict(list)
    per_second: Counter[datetime] = Counter()
    for symbol, slot, start, end in zip(
        t["symbol"], t["slot_number"], t["window_start"], t["window_end"], strict=True
    ):
        if start is None or end is None:
            continue
        per_symbol[symbol].append((start, (end - start).total_seconds() or 0.5, slot or 0))
        per_second[start.astimezone(KST).replace(microsecond=0)] += 1
    stats.per_second = sorted(per_second.items())
    cells: dict[int, dict[datetime, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for symbol, samples in per_symbol.items():
        samples.sort()
        stats.scalp_written += len(samples)
        stats.scalp_expected += 1
        for i, (start, period_s, slot) in enumerate(samples):
            cells[slot][_minute(start)][0] += 1
            cells[slot][_minute(start)][1] += 1
            if i + 1 < len(samples):
                due = due_windows(start, samples[i + 1][0], period_s, absences.get(symbol, []))
                stats.scalp_expected += len(due) + 1
                for w in due:
                    cells[slot][_minute(w)][1] += 1
    stats.scalp_symbols = len(per_symbol)
    stats.slot_minutes = {s: {m: (w, e) for m, (w, e) in c.items()} for s, c in sorted(cells.items())}


def _housekeeping(data_dir: Path, day: date, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Backup and retention events about `day`: its own file and the next three days' files."""
    wanted = HOUSEKEEPING_TYPES + RETENTION_TYPES
    found = [r for r in rows if r["type"] in wanted]
    for ahead in range(1, 4):
        later = day + timedelta(days=ahead)
        try:
            later_groups = [g for g in day_groups(data_dir, later) if g.table == "events"]
        except NoData:  # nothing recorded that day (yet): no later event to find there
            continue
        t = _table(later_groups, "events", ["type", "severity", "at", "source", "message", "details"])
        for row in zip(*t.values(), strict=True):
            r = dict(zip(t, row, strict=True))
            if r["type"] in wanted and json.loads(r["details"]).get("day") == day.isoformat():
                found.append(r)
    return sorted(found, key=lambda r: r["at"])
