"""One KST day of the archive, as the research outputs read it: which files, strictly decoded.

Files of day D (``OBSERVER_DATA_DIR`` layout, DESIGN.md)::

    swing/{provider}/{market}/D/*.jsonl   -> table "swing"   (provider, market)
    scalp/{provider}/{market}/D/*.jsonl   -> table "scalp"   (provider, market)
    raw/{provider}/{market}/D/*.jsonl     -> table "trades"  (provider, market)
    system/events/{provider}/D.jsonl      -> tables "gaps" and "events" (provider)
    metrics/D.jsonl                       -> table "metrics"

A line without its ``\\n`` or that is not JSON stops everything with `DamagedArchive` naming the
file and line: outputs are derived from a sound archive only (``observer verify`` first).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from observer.days import day_key
from sinks.research.errors import DamagedArchive, NoData

_JSONL = re.compile(r"^[^.].*\.jsonl$")
MARKET_TRACKS = {"swing": "swing", "scalp": "scalp", "raw": "trades"}  # archive dir -> table


@dataclass(frozen=True, slots=True)
class Group:
    """The files of one output table: ``table`` of ``provider`` (and ``market``) on the day."""

    table: str
    provider: str
    market: str
    files: tuple[Path, ...]

    @property
    def name(self) -> str:
        return "_".join(p for p in (self.table, self.provider, self.market) if p)


def _dirs(path: Path) -> list[Path]:
    try:
        return sorted(p for p in path.iterdir() if p.is_dir() and not p.is_symlink())
    except (FileNotFoundError, NotADirectoryError):
        return []


def _file(path: Path) -> bool:
    return path.is_file() and not path.is_symlink()


def day_groups(data_dir: Path, day: date) -> list[Group]:
    """Every table's files for `day`; `NoData` when the archive has none."""
    key = day_key(day)
    groups: list[Group] = []
    for family, table in MARKET_TRACKS.items():
        for provider in _dirs(data_dir / family):
            for market in _dirs(provider):
                files = sorted(p for p in (market / key).glob("*.jsonl") if _file(p) and _JSONL.match(p.name))
                if files:
                    groups.append(Group(table, provider.name, market.name, tuple(files)))
    for provider in _dirs(data_dir / "system" / "events"):
        path = provider / f"{key}.jsonl"
        if _file(path):
            groups.append(Group("gaps", provider.name, "", (path,)))
            groups.append(Group("events", provider.name, "", (path,)))
    metrics = data_dir / "metrics" / f"{key}.jsonl"
    if _file(metrics):
        groups.append(Group("metrics", "", "", (metrics,)))
    if not groups:
        raise NoData(
            f"no archive files for {day.isoformat()} under {data_dir} (a closed day, or the wrong data dir?)"
        )
    return groups


def read_lines(path: Path, chunk_bytes: int = 4 << 20) -> Iterator[tuple[int, bytes]]:
    """(line number, line without ``\\n``) of one archive file; a torn last line raises."""
    number = 0
    rest = b""
    with path.open("rb") as f:
        while chunk := f.read(chunk_bytes):
            parts = (rest + chunk).split(b"\n")
            rest = parts.pop()
            for line in parts:
                number += 1
                if line:
                    yield number, line
    if rest:
        raise DamagedArchive(
            f"{path}:{number + 1}: torn last line ({len(rest)} bytes without a newline); "
            "run `observer verify` and let the writer repair the file before exporting"
        )


def count_lines(path: Path) -> int:
    """Newline-terminated non-empty lines (the archive's own count, independent of decoding)."""
    return sum(1 for _ in read_lines(path))
