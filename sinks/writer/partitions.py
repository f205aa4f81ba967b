"""Where an archive line goes: relative paths under the data dir, decided by ``partition_at`` (KST).

====================  =================================================  ==========================
track                 file                                               partition_at (set by core)
====================  =================================================  ==========================
swing                 ``swing/{provider}/{market}/YYYYMMDD/HH_00.jsonl``  observation.meta.captured_at
scalp                 ``scalp/{provider}/{market}/YYYYMMDD/HH_MM_SS.jsonl``  instruments[0].window_start
raw                   ``raw/{provider}/{market}/YYYYMMDD/HH_00.jsonl``    received_at
system                ``system/events/{provider}/YYYYMMDD.jsonl``         ``at`` (events), ``start`` (gaps)
overflow              ``system/overflow/{provider}/YYYYMMDD_overflow.jsonl``  at
metrics               ``metrics/YYYYMMDD.jsonl``                          at
====================  =================================================  ==========================

Scalp rotation (`ScalpRotation`). The period is 10 / 30 / 60 min at mitigation level 0 / 1 / 2; every
period boundary is a multiple of 10 min, so every scalp file starts on a 10-minute mark (seconds
``00``). For a record at ``t`` written at level ``L`` in a day directory whose files start at ``S``:

* ``c`` = start of the level-``L`` period containing ``t``; ``F`` = the latest existing start <= ``t``;
* if there is no ``F`` or ``c > F``: open file ``c``; otherwise append to file ``F``.

So a level change mid-period takes effect from the next record: a *shorter* period cuts the current
file at the first new boundary after its start; a *longer* period continues the current file up to
the next boundary of the longer period (a file is never reopened under an earlier name, so files
never overlap). Consequences that ``observer verify`` checks: every record of a scalp file has
``start <= t < start of the next file in the directory`` and ``t`` lies in the same hour as the file
start (``c`` is never below the hour of ``t``). The rule depends only on the files on disk and the
level, so it holds across restarts; a record is routed once per commit and written once.
"""

from __future__ import annotations

import os
import re
from bisect import bisect_right, insort
from datetime import datetime
from pathlib import Path

from observer.clock import KST

SCALP_PERIOD_MIN: dict[int, int] = {0: 10, 1: 30, 2: 60}
SCALP_NAME = re.compile(r"^(\d\d)_(\d\d)_(\d\d)\.jsonl$")
HOURLY_NAME = re.compile(r"^(\d\d)_00\.jsonl$")
_SAFE_COMPONENT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
HOURLY_TRACKS = ("swing", "raw")


class PartitionError(ValueError):
    """The record cannot be placed: naive time or a provider/market that is not a safe path component."""


def to_kst(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise PartitionError("partition_at has no UTC offset")
    return at.astimezone(KST)


def safe_component(value: str, what: str) -> str:
    if not _SAFE_COMPONENT.match(value):
        raise PartitionError(f"{what} {value!r} is not a safe path component")
    return value


def scalp_period_min(level: int) -> int:
    return SCALP_PERIOD_MIN[min(max(level, 0), 2)]


def hourly_path(track: str, provider: str, market: str, at: datetime) -> Path:
    return Path(track, provider, market, f"{at:%Y%m%d}", f"{at:%H}_00.jsonl")


def scalp_day_dir(provider: str, market: str, at: datetime) -> Path:
    return Path("scalp", provider, market, f"{at:%Y%m%d}")


def events_path(provider: str, at: datetime) -> Path:
    return Path("system", "events", provider, f"{at:%Y%m%d}.jsonl")


def overflow_path(provider: str, at: datetime) -> Path:
    return Path("system", "overflow", provider, f"{at:%Y%m%d}_overflow.jsonl")


def metrics_path(at: datetime) -> Path:
    return Path("metrics", f"{at:%Y%m%d}.jsonl")


def scalp_start_s(name: str) -> int | None:
    """Seconds after midnight encoded in a scalp file name, or None if it is not one."""
    m = SCALP_NAME.match(name)
    if not m:
        return None
    return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + int(m.group(3))


def scalp_name(start_s: int) -> str:
    return f"{start_s // 3600:02d}_{start_s // 60 % 60:02d}_{start_s % 60:02d}.jsonl"


class ScalpRotation:
    """The scalp rotation rule of the module docstring, with the starts of each day dir cached."""

    def __init__(self, root: Path):
        self.root = root
        self._starts: dict[Path, list[int]] = {}
        self.files_started = 0  # changes whenever a new scalp file start is decided

    def starts(self, day_dir: Path) -> list[int]:
        cached = self._starts.get(day_dir)
        if cached is None:
            try:
                names = os.listdir(self.root / day_dir)
            except FileNotFoundError:
                names = []
            cached = sorted(s for s in (scalp_start_s(n) for n in names) if s is not None)
            self._starts[day_dir] = cached
        return cached

    def path_for(self, provider: str, market: str, at: datetime, level: int) -> Path:
        day_dir = scalp_day_dir(provider, market, at)
        starts = self.starts(day_dir)
        t = at.hour * 3600 + at.minute * 60 + at.second
        period_s = scalp_period_min(level) * 60
        candidate = t - t % period_s
        i = bisect_right(starts, t) - 1
        if i < 0 or candidate > starts[i]:
            insort(starts, candidate)
            self.files_started += 1
            start = candidate
        else:
            start = starts[i]
        return day_dir / scalp_name(start)

    def forget_older_than(self, keep: int = 64) -> None:
        """Bound the cache (a long-running writer sees one day dir per market per day)."""
        if len(self._starts) > keep:
            for key in sorted(self._starts)[: len(self._starts) - keep]:
                del self._starts[key]


class Partitioner:
    """Maps (track, provider, market, partition_at, level) to a path relative to the data dir."""

    def __init__(self, root: Path):
        self.scalp = ScalpRotation(root)

    def relpath(self, track: str, provider: str, market: str, partition_at: datetime, level: int) -> Path:
        at = to_kst(partition_at)
        match track:
            case "swing" | "raw":
                return hourly_path(
                    track, safe_component(provider, "provider"), safe_component(market, "market"), at
                )
            case "scalp":
                return self.scalp.path_for(
                    safe_component(provider, "provider"), safe_component(market, "market"), at, level
                )
            case "system":
                return events_path(safe_component(provider, "provider"), at)
            case "overflow":
                return overflow_path(safe_component(provider, "provider"), at)
            case "metrics":
                return metrics_path(at)
        raise PartitionError(f"unknown track {track!r}")


def check_route(track: str, provider: str, market: str, partition_at: datetime) -> None:
    """Raise PartitionError if a record with these fields cannot be placed (checked on receipt)."""
    to_kst(partition_at)
    if track in ("swing", "scalp", "raw"):
        safe_component(market, "market")
    if track != "metrics":
        safe_component(provider, "provider")
