"""What is on disk, day by day, for retention: a day's raw/ dirs and package, whether it is verified
or anomalous, which files each family holds, and how full the filesystem is."""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Literal, Protocol

import msgspec

from observer.config import Config, data_dir
from observer.days import day_of_key, parse_day
from sinks.housekeeping.layout import (
    backup_root,
    days_with_data,
    event_files,
    family_files,
    market_day_dirs,
    tree_bytes,
)
from sinks.housekeeping.receipts import verified_days

log = logging.getLogger(__name__)
What = Literal["raw", "package", "scalp", "swing", "metrics", "system"]


class DiskProbe(Protocol):
    """Usage of the filesystem holding the data dir."""

    def percent(self) -> float | None: ...

    def total_bytes(self) -> int: ...


class FilesystemProbe:
    def __init__(self, path: Path):
        self.path = path

    def _probe(self) -> Path:
        probe = self.path.resolve()
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        return probe

    def percent(self) -> float | None:
        try:
            usage = shutil.disk_usage(self._probe())
        except OSError:
            return None
        avail_total = usage.used + usage.free  # as df: blocks reserved for root do not count
        return 100.0 * usage.used / avail_total if avail_total else None

    def total_bytes(self) -> int:
        try:
            usage = shutil.disk_usage(self._probe())
        except OSError:
            return 0
        return usage.used + usage.free


@dataclass(slots=True)
class DayState:
    day: date
    raw_dirs: list[Path] = field(default_factory=list)
    raw_bytes: int = 0
    package: Path | None = None
    package_bytes: int = 0
    verified: bool = False
    anomalous: bool = False
    has_data: bool = False  # archive files of the day (any family) on this host

    def paths(self, cfg: Config, what: What) -> tuple[Path, ...]:
        """What rule 4 would delete of `what` for this day."""
        match what:
            case "raw":
                return tuple(self.raw_dirs)
            case "package":
                return (self.package,) if self.package is not None else ()
            case "scalp" | "swing":
                return tuple(market_day_dirs(cfg, what, self.day))
            case _:
                return tuple(
                    f.path for f in family_files(cfg, what, self.day) if not f.name.startswith("universe/")
                )


class _EventLine(msgspec.Struct, frozen=True):
    type: str = ""
    details: dict[str, object] = {}


_event_decoder = msgspec.json.Decoder(_EventLine)


def anomalous_days(cfg: Config, days: set[date]) -> set[date]:
    """Days among `days` marked by a ``day_anomalous`` system event (`DayAnomalous.event()`): the
    day it names in ``details.day``, else the day of the events file it is in."""
    out: set[date] = set()
    for day in days:
        for path in event_files(cfg, day):
            try:
                with open(path, "rb") as fh:
                    for line in fh:
                        if b"day_anomalous" not in line:
                            continue
                        try:
                            event = _event_decoder.decode(line)
                        except msgspec.DecodeError:
                            continue
                        if event.type != "day_anomalous":
                            continue
                        named = event.details.get("day")
                        try:
                            out.add(parse_day(str(named)) if named else day)
                        except ValueError:
                            out.add(day)
            except OSError as e:
                log.warning("events file unreadable", extra={"path": str(path), "error": str(e)})
    return out


def survey(cfg: Config) -> list[DayState]:
    """Every day that has archive files or a package on disk, oldest first."""
    states: dict[date, DayState] = {d: DayState(d, has_data=True) for d in days_with_data(cfg)}
    root = data_dir(cfg) / "raw"
    for provider in _dirs(root):
        for market in _dirs(provider):
            for day_dir in _dirs(market):
                day = day_of_key(day_dir.name)
                if day is not None:
                    states.setdefault(day, DayState(day, has_data=True)).raw_dirs.append(day_dir)
    for pkg in _dirs(backup_root(cfg)):
        day = day_of_key(pkg.name)
        if day is not None:
            states.setdefault(day, DayState(day)).package = pkg
    verified = verified_days(cfg)
    anomalous = anomalous_days(cfg, set(states))
    for st in states.values():
        st.raw_bytes = sum(tree_bytes(d) for d in st.raw_dirs)
        st.package_bytes = tree_bytes(st.package) if st.package is not None else 0
        st.verified = st.day in verified
        st.anomalous = st.day in anomalous
    return [states[d] for d in sorted(states)]


def _dirs(path: Path) -> list[Path]:
    try:
        return sorted(Path(e.path) for e in os.scandir(path) if e.is_dir(follow_symlinks=False))
    except (FileNotFoundError, NotADirectoryError):
        return []
