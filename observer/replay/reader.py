"""Selecting and reading a recorded range: one time-ordered stream across tracks and files.

`select_files` lists the archive files of the days the range touches (hourly files outside the
range are skipped by name); `read_range` opens each read-only, parses only what ordering and
selection need (record id and the line's own time, see `line_time`), and merges the files with
`heapq.merge`: memory is one buffered line per file plus a short reorder window, never a day.

A line's time is its partition time (``observer.core.records``): swing ``captured_at``, scalp
``window_start``, raw ``received_at``, events ``at``, gap markers ``start``, overflow and metrics
``at``. Lines inside one file are in commit order, which may run a little behind their times. A
data file (swing, scalp, raw: large, near-ordered) is re-sorted within ``reorder_window_s`` and
whatever is later than that is passed on where it stands and counted; a day file (events,
overflow, metrics: small, but a gap marker is written long after its start) is sorted through an
index of (time, offset) per line and read back line by line.

A torn last line (no ``\\n``) or a line that is not a valid archive line of its track is skipped,
counted and remembered with ``file:line`` (`ReadReport`).
"""

from __future__ import annotations

import heapq
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import msgspec

from observer.clock import KST, datetime_to_ns
from observer.schema import ArchiveKind

TRACKS: tuple[ArchiveKind, ...] = ("swing", "scalp", "raw", "system", "overflow", "metrics")
HOURLY_TRACKS = ("swing", "scalp", "raw")  # many, large, near-ordered files (the rest: one small file a day)
MAX_REPORTED = 50


class ReplayError(Exception):
    """The selection cannot be replayed (missing day, empty range, bad arguments)."""


@dataclass(frozen=True)
class Selection:
    data: Path
    start: datetime  # inclusive, aware
    end: datetime  # exclusive, aware
    tracks: frozenset[str] = frozenset(TRACKS)
    symbols: frozenset[str] = frozenset()  # empty: all
    markets: frozenset[str] = frozenset()  # empty: all

    def describe(self) -> str:
        text = f"{self.start.astimezone(KST):%Y-%m-%d %H:%M:%S} .. {self.end.astimezone(KST):%Y-%m-%d %H:%M:%S} KST"
        if self.tracks != frozenset(TRACKS):
            text += f", tracks {','.join(sorted(self.tracks))}"
        if self.symbols:
            text += f", symbols {','.join(sorted(self.symbols))}"
        if self.markets:
            text += f", markets {','.join(sorted(self.markets))}"
        return text


class ArchiveFile(NamedTuple):
    path: Path
    track: ArchiveKind
    market: str  # "" for system, overflow, metrics


class Line(NamedTuple):
    """One selected line; tuples order by (time, file, line number)."""

    at_ns: int
    file_no: int
    line_no: int
    at: datetime
    track: ArchiveKind
    market: str
    record_id: str
    raw: bytes


@dataclass
class ReadReport:
    selected: Counter[str] = field(default_factory=Counter)
    bad_lines: int = 0
    torn_lines: int = 0
    out_of_order: int = 0
    problems: list[str] = field(default_factory=list)  # "file:line: reason", the first MAX_REPORTED
    files: int = 0
    bytes_total: int = 0
    bytes_read: int = 0

    def bad(self, where: str, reason: str, *, torn: bool = False) -> None:
        self.bad_lines += 1
        self.torn_lines += torn
        if len(self.problems) < MAX_REPORTED:
            self.problems.append(f"{where}: {reason}")

    def format(self) -> str:
        if not self.bad_lines:
            return ""
        head = f"skipped {self.bad_lines} bad line(s) ({self.torn_lines} torn):"
        more = self.bad_lines - len(self.problems)
        tail = [f"  ... and {more} more"] if more > 0 else []
        return "\n".join([head, *(f"  {p}" for p in self.problems), *tail])


# --------------------------------------------------------------------------- files


def _days(sel: Selection) -> list[date]:
    first = sel.start.astimezone(KST).date()
    last = (sel.end - timedelta(microseconds=1)).astimezone(KST).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _hour_overlaps(sel: Selection, day: date, hour: int) -> bool:
    begin = datetime(day.year, day.month, day.day, hour, tzinfo=KST)
    return begin < sel.end and begin + timedelta(hours=1) > sel.start


def _file_overlaps(sel: Selection, day: date, name: str) -> bool:
    """Hourly files hold one hour; a scalp file ``HH_MM_SS`` starts at its name (within its hour)."""
    if not _hour_overlaps(sel, day, int(name[:2])):
        return False
    if name[2:3] == "_" and name[5:6] == "_" and name[3:5].isdigit() and name[6:8].isdigit():
        begin = datetime(
            day.year, day.month, day.day, int(name[:2]), int(name[3:5]), int(name[6:8]), tzinfo=KST
        )
        return begin < sel.end
    return True


def select_files(sel: Selection) -> list[ArchiveFile]:
    """The files the selection may draw from (sorted for a stable order). Raises ReplayError."""
    if not sel.data.is_dir():
        raise ReplayError(f"no archive at {sel.data}")
    found: list[ArchiveFile] = []
    any_day = False
    for day in _days(sel):
        ymd = f"{day:%Y%m%d}"
        for track in ("swing", "scalp", "raw"):
            for day_dir in sorted(sel.data.glob(f"{track}/*/*/{ymd}")):
                any_day = True
                market = day_dir.parent.name
                if track not in sel.tracks or (sel.markets and market not in sel.markets):
                    continue
                for path in sorted(day_dir.glob("*.jsonl")):
                    if _file_overlaps(sel, day, path.name):
                        found.append(ArchiveFile(path, track, market))
        for track, pattern in (
            ("system", f"system/events/*/{ymd}.jsonl"),
            ("overflow", f"system/overflow/*/{ymd}_overflow.jsonl"),
            ("metrics", f"metrics/{ymd}.jsonl"),
        ):
            for path in sorted(sel.data.glob(pattern)):
                any_day = True
                if track in sel.tracks:
                    found.append(ArchiveFile(path, track, ""))  # type: ignore[arg-type]
    if not any_day:
        raise ReplayError(
            f"no recorded day {', '.join(f'{d:%Y-%m-%d}' for d in _days(sel))} under {sel.data}"
            f" (days present: {', '.join(days_present(sel.data)) or 'none'})"
        )
    return found


def days_present(data: Path) -> list[str]:
    days = {p.name for p in data.glob("*/*/*/*") if p.is_dir() and p.name.isdigit() and len(p.name) == 8}
    days |= {p.stem[:8] for p in data.glob("system/events/*/*.jsonl")}
    return sorted(days)


# --------------------------------------------------------------------------- line times


class _Meta(msgspec.Struct):
    captured_at: datetime


class _Instrument(msgspec.Struct):
    window_start: datetime | None = None


class _Observation(msgspec.Struct):
    meta: _Meta
    instruments: list[_Instrument]


class _Pattern(msgspec.Struct):
    record_id: str
    observation: _Observation


class _Raw(msgspec.Struct):
    record_id: str
    received_at: datetime


class _Event(msgspec.Struct):
    record_id: str
    at: datetime | None = None
    start: datetime | None = None


_pattern = msgspec.json.Decoder(_Pattern)
_raw = msgspec.json.Decoder(_Raw)
_event = msgspec.json.Decoder(_Event)


def line_time(track: str, raw: bytes) -> tuple[str, datetime]:
    """(record_id, the line's own time). Raises ValueError / msgspec errors for a bad line."""
    if track == "swing":
        p = _pattern.decode(raw)
        return p.record_id, p.observation.meta.captured_at
    if track == "scalp":
        p = _pattern.decode(raw)
        start = p.observation.instruments[0].window_start if p.observation.instruments else None
        if start is None:
            raise ValueError("scalp line without instruments[0].window_start")
        return p.record_id, start
    if track == "raw":
        r = _raw.decode(raw)
        return r.record_id, r.received_at
    e = _event.decode(raw)
    at = e.start if e.at is None else e.at
    if at is None:
        raise ValueError("event line without at/start")
    return e.record_id, at


def last_time(sel: Selection, tail_bytes: int = 65_536) -> datetime | None:
    """The newest line time in the selected files, from the tail of each (files are near-ordered)."""
    newest: datetime | None = None
    for f in select_files(sel):
        with open(f.path, "rb") as fh:
            fh.seek(max(fh.seek(0, os.SEEK_END) - tail_bytes, 0))
            for raw in fh.read().splitlines()[-50:]:
                try:
                    _, at = line_time(f.track, raw)
                except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
                    continue
                newest = at if newest is None or at > newest else newest
    return newest


# --------------------------------------------------------------------------- reading


def _wanted(sel: Selection, f: ArchiveFile, record_id: str, raw: bytes) -> bool:
    if not sel.symbols:
        return True
    if f.track in ("swing", "scalp"):
        parts = record_id.split(":", 2)
        return len(parts) > 1 and parts[1] in sel.symbols
    if f.track == "raw":  # a frame's records start with the symbol: "0|H0STCNT0|001|005930^..."
        return any(f"|{s}^".encode() in raw or f"^{s}^".encode() in raw for s in sel.symbols)
    return True


class _Parsed(NamedTuple):
    line_no: int
    offset: int
    raw: bytes
    record_id: str
    at: datetime
    at_ns: int


def _parse(sel: Selection, f: ArchiveFile, report: ReadReport) -> Iterator[_Parsed]:
    """The valid lines of one file (bad and torn ones reported), opened read-only."""
    rel = f.path.relative_to(sel.data)
    offset = 0
    with open(f.path, "rb") as fh:  # read-only: replay never writes into an archive
        for line_no, raw in enumerate(fh, 1):
            report.bytes_read += len(raw)
            at_offset, offset = offset, offset + len(raw)
            if not raw.endswith(b"\n"):
                report.bad(f"{rel}:{line_no}", "torn line (no newline at the end of the file)", torn=True)
                continue
            raw = raw[:-1]
            try:
                record_id, at = line_time(f.track, raw)
                if at.tzinfo is None:
                    raise ValueError("time without UTC offset")
            except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as e:
                report.bad(f"{rel}:{line_no}", f"not a valid {f.track} line: {str(e)[:120]}")
                continue
            yield _Parsed(line_no, at_offset, raw, record_id, at, datetime_to_ns(at))


def _read_file(
    sel: Selection, f: ArchiveFile, file_no: int, report: ReadReport, window_ns: int
) -> Iterator[Line]:
    """A data file (swing, scalp, raw): near-ordered, re-sorted within the reorder window."""
    start_ns, end_ns = datetime_to_ns(sel.start), datetime_to_ns(sel.end)
    held: list[Line] = []
    newest = last_out = -(2**63)
    for p in _parse(sel, f, report):
        if p.at_ns >= end_ns + window_ns:
            break  # past the range by more than any disorder: the rest of the file is too
        if not start_ns <= p.at_ns < end_ns or not _wanted(sel, f, p.record_id, p.raw):
            continue
        line = Line(p.at_ns, file_no, p.line_no, p.at, f.track, f.market, p.record_id, p.raw)
        if p.at_ns < last_out:
            report.out_of_order += 1
            yield line
            continue
        heapq.heappush(held, line)
        newest = max(newest, p.at_ns)
        while held and held[0].at_ns <= newest - window_ns:
            out = heapq.heappop(held)
            last_out = out.at_ns
            yield out
    while held:
        yield heapq.heappop(held)


def _read_indexed(sel: Selection, f: ArchiveFile, file_no: int, report: ReadReport) -> Iterator[Line]:
    """A day file (events, overflow, metrics): small, but written late at times (a gap marker carries
    the start of what it covers): an index of (time, offset) is sorted, the lines are read back."""
    start_ns, end_ns = datetime_to_ns(sel.start), datetime_to_ns(sel.end)
    index = sorted(
        (p.at_ns, p.line_no, p.offset, len(p.raw), p.record_id, p.at)
        for p in _parse(sel, f, report)
        if start_ns <= p.at_ns < end_ns
    )
    with open(f.path, "rb") as fh:
        for at_ns, line_no, offset, length, record_id, at in index:
            fh.seek(offset)
            yield Line(at_ns, file_no, line_no, at, f.track, f.market, record_id, fh.read(length))


def read_range(sel: Selection, report: ReadReport, *, reorder_window_s: float = 3.0) -> Iterator[Line]:
    """The selected lines of every file, merged in time order (streamed)."""
    files = select_files(sel)
    report.files = len(files)
    report.bytes_total = sum(f.path.stat().st_size for f in files)
    window_ns = int(reorder_window_s * 1e9)
    streams = [
        _read_file(sel, f, i, report, window_ns)
        if f.track in HOURLY_TRACKS
        else _read_indexed(sel, f, i, report)
        for i, f in enumerate(files)
    ]
    for line in heapq.merge(*streams):
        report.selected[line.track] += 1
        yield line
