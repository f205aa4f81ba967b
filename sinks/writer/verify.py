"""``observer verify PATH``: prove an archive sound, or say exactly where it is not.

Checks every archive file under PATH (``swing/``, ``scalp/``, ``raw/``, ``system/``, ``metrics/``;
``logs/``, ``state/`` and ``backup/`` are not archive files):

* the file name and directories match the layout (``HH_00``, scalp ``HH_MM_00`` on a 10-minute
  mark, ``YYYYMMDD`` dirs/files); file mode 0600, directory mode 0700;
* every line is ``\\n``-terminated, valid UTF-8, one JSON object with a string ``record_id``;
* no ``record_id`` twice within a track (swing, scalp, raw, system, overflow, metrics);
* every record is in the partition its own timestamp says (KST), with an explicit UTC offset:

  ========  ==================================================  ===============================
  track     field                                               must match
  ========  ==================================================  ===============================
  swing     ``observation.meta.captured_at``                    date dir and ``HH`` of the file
  scalp     ``observation.instruments[0].window_start``         date dir; file start <= t < next
                                                                file's start; same hour as start
  raw       ``received_at``                                     date dir and ``HH``
  system    ``start`` for ``type == "gap_marker"``, else ``at``  file date
  overflow  ``at``                                              file date
  metrics   ``at``                                              file date
  ========  ==================================================  ===============================

The writer places lines by ``ArchiveRecord.partition_at``; the core sets it from these same fields.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import stat
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import msgspec

from observer.clock import KST
from observer.days import day_of_key
from sinks.writer.partitions import HOURLY_NAME, SCALP_NAME

TRACK_DIRS = ("swing", "scalp", "raw", "system", "metrics")
NOT_ARCHIVE = ("logs", "state", "backup", "config")


class _Meta(msgspec.Struct):
    captured_at: datetime


class _Inst(msgspec.Struct):
    window_start: datetime | None = None


class _Obs(msgspec.Struct):
    meta: _Meta
    instruments: list[_Inst]


class _PatternLine(msgspec.Struct):
    record_id: str
    observation: _Obs


class _RawLine(msgspec.Struct):
    record_id: str
    received_at: datetime


class _EventLine(msgspec.Struct):
    record_id: str
    type: str = ""
    at: datetime | None = None
    start: datetime | None = None


class _AtLine(msgspec.Struct):
    record_id: str
    at: datetime


_DECODERS: dict[str, msgspec.json.Decoder[object]] = {
    "swing": msgspec.json.Decoder(_PatternLine),
    "scalp": msgspec.json.Decoder(_PatternLine),
    "raw": msgspec.json.Decoder(_RawLine),
    "system": msgspec.json.Decoder(_EventLine),
    "overflow": msgspec.json.Decoder(_AtLine),
    "metrics": msgspec.json.Decoder(_AtLine),
}


@dataclass(frozen=True, slots=True)
class Problem:
    path: Path
    line: int  # 0: the file itself
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}" if self.line else f"{self.path}: {self.message}"


@dataclass(slots=True)
class ArchiveFile:
    path: Path
    track: str
    day: date
    hour: int | None = None  # swing/raw
    start_s: int | None = None  # scalp: seconds after midnight
    next_start_s: int | None = None  # scalp: start of the next file in the same directory
    track_root: Path = field(default_factory=Path)


@dataclass(slots=True)
class Report:
    root: Path
    files: int = 0
    lines: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        per_track = ", ".join(f"{t} {n}" for t, n in sorted(self.lines.items())) or "no lines"
        total = sum(self.lines.values())
        if self.ok:
            return f"verify: OK: {self.root}: {self.files} files, {total} lines ({per_track})"
        bad_files = len({p.path for p in self.problems})
        return (
            f"verify: DAMAGED: {self.root}: {len(self.problems)} problems in {bad_files} of {self.files} "
            f"files, {total} lines ({per_track})"
        )

    def format(self, max_problems: int = 200) -> str:
        out = [str(p) for p in self.problems[:max_problems]]
        if len(self.problems) > max_problems:
            out.append(f"... and {len(self.problems) - max_problems} more problems")
        out.append(self.summary())
        return "\n".join(out)


def classify(path: Path) -> ArchiveFile | str:
    """What archive file `path` is, or why its name does not fit the layout."""
    parts = path.parts
    name = path.name
    if len(parts) >= 5 and parts[-5] in ("swing", "raw", "scalp"):
        track = parts[-5]
        day = day_of_key(parts[-2])
        if day is None:
            return f"directory {parts[-2]!r} is not a YYYYMMDD date"
        root = path.parents[3]
        if track == "scalp":
            m = SCALP_NAME.match(name)
            if not m or int(m.group(2)) % 10 or m.group(3) != "00" or int(m.group(1)) > 23:
                return "not a scalp file name (HH_MM_00.jsonl on a 10-minute mark)"
            return ArchiveFile(
                path, track, day, start_s=int(m.group(1)) * 3600 + int(m.group(2)) * 60, track_root=root
            )
        m = HOURLY_NAME.match(name)
        if not m or int(m.group(1)) > 23:
            return f"not an hourly {track} file name (HH_00.jsonl)"
        return ArchiveFile(path, track, day, hour=int(m.group(1)), track_root=root)
    if len(parts) >= 4 and parts[-4] == "system" and parts[-3] in ("events", "overflow"):
        track = "system" if parts[-3] == "events" else "overflow"
        stem = name.removesuffix(".jsonl")
        if track == "overflow":
            if not stem.endswith("_overflow"):
                return "not an overflow file name (YYYYMMDD_overflow.jsonl)"
            stem = stem.removesuffix("_overflow")
        day = day_of_key(stem)
        if day is None or not name.endswith(".jsonl"):
            return f"not a daily {track} file name"
        return ArchiveFile(path, track, day, track_root=path.parents[2])
    if len(parts) >= 2 and parts[-2] == "metrics":
        day = day_of_key(name.removesuffix(".jsonl"))
        if day is None or not name.endswith(".jsonl"):
            return "not a daily metrics file name (YYYYMMDD.jsonl)"
        return ArchiveFile(path, "metrics", day, track_root=path.parent)
    return "not an archive file"


class Verifier:
    def __init__(self, root: Path):
        self.report = Report(root)
        self._seen: dict[str, set[bytes]] = defaultdict(set)

    def problem(self, path: Path, line: int, message: str) -> None:
        self.report.problems.append(Problem(path, line, message))

    def run(self) -> Report:
        root = self.report.root
        files: list[ArchiveFile] = []
        for path in sorted(_walk(root)):
            rel = path.relative_to(root).parts
            in_tracks = any(p in TRACK_DIRS for p in rel[:-1]) or any(
                p in TRACK_DIRS for p in root.parts[-4:]
            )
            if rel[0] in NOT_ARCHIVE:
                continue
            kind = classify(path)
            if isinstance(kind, str):
                if in_tracks:
                    self.problem(path, 0, kind)
                continue
            files.append(kind)
        self._link_scalp(files)
        dirs: set[Path] = set()
        for af in files:
            self.report.files += 1
            self.check_file(af)
            d = af.path.parent
            while True:
                dirs.add(d)
                if d == af.track_root or d == d.parent:
                    break
                d = d.parent
        for d in sorted(dirs):
            mode = stat.S_IMODE(os.stat(d).st_mode)
            if mode != 0o700:
                self.problem(d, 0, f"directory mode {mode:04o}, expected 0700")
        self.report.problems.sort(key=lambda p: (str(p.path), p.line))
        return self.report

    @staticmethod
    def _link_scalp(files: list[ArchiveFile]) -> None:
        by_dir: dict[Path, list[ArchiveFile]] = defaultdict(list)
        for af in files:
            if af.track == "scalp":
                by_dir[af.path.parent].append(af)
        for group in by_dir.values():
            group.sort(key=lambda a: a.start_s or 0)
            for a, b in itertools.pairwise(group):
                a.next_start_s = b.start_s

    def check_file(self, af: ArchiveFile) -> None:
        path = af.path
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode != 0o600:
            self.problem(path, 0, f"file mode {mode:04o}, expected 0600")
        data = path.read_bytes()
        lines = data.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        elif data:
            self.problem(path, len(lines), "torn last line: no trailing newline")
        decoder = _DECODERS[af.track]
        seen = self._seen[af.track]
        count = 0
        for n, line in enumerate(lines, 1):
            count += 1
            if not line.strip():
                self.problem(path, n, "empty line")
                continue
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as e:
                self.problem(path, n, f"invalid UTF-8 at byte {e.start}")
                continue
            try:
                doc = decoder.decode(line)
            except msgspec.ValidationError as e:
                self.problem(path, n, f"not a valid {af.track} line: {e}")
                continue
            except msgspec.DecodeError as e:
                self.problem(path, n, f"not JSON: {e}")
                continue
            record_id: str = doc.record_id  # type: ignore[attr-defined]
            digest = hashlib.blake2b(record_id.encode(), digest_size=16).digest()
            if digest in seen:
                self.problem(path, n, f"duplicate record_id {record_id!r} in track {af.track}")
            else:
                seen.add(digest)
            message = self._partition_problem(af, doc)
            if message:
                self.problem(path, n, message)
        self.report.lines[af.track] += count

    @staticmethod
    def _partition_problem(af: ArchiveFile, doc: object) -> str | None:
        at: datetime | None
        what: str
        match doc:
            case _PatternLine() if af.track == "swing":
                at, what = doc.observation.meta.captured_at, "observation.meta.captured_at"
            case _PatternLine():
                insts = doc.observation.instruments
                at, what = (insts[0].window_start if insts else None), "instruments[0].window_start"
            case _RawLine():
                at, what = doc.received_at, "received_at"
            case _EventLine():
                what = "start" if doc.type == "gap_marker" else "at"
                at = doc.start if doc.type == "gap_marker" else doc.at
            case _AtLine():
                at, what = doc.at, "at"
            case _:
                return "unknown line type"
        if at is None:
            return f"missing {what}"
        if at.tzinfo is None:
            return f"{what} has no UTC offset"
        kst = at.astimezone(KST)
        if kst.date() != af.day:
            return f"{what} {at.isoformat()} is on {kst.date()}, not in this {af.day:%Y%m%d} partition"
        if af.hour is not None and kst.hour != af.hour:
            return (
                f"{what} {at.isoformat()} is in hour {kst.hour:02d}, not in this {af.hour:02d}_00 partition"
            )
        if af.start_s is not None:
            t = kst.hour * 3600 + kst.minute * 60 + kst.second
            if t < af.start_s or kst.hour != af.start_s // 3600:
                return f"{what} {at.isoformat()} is before this file's period or in another hour"
            if af.next_start_s is not None and t >= af.next_start_s:
                return f"{what} {at.isoformat()} belongs to a later file of this directory"
        return None


def _walk(root: Path) -> list[Path]:
    out: list[Path] = []
    for dirpath, dirs, files in os.walk(root):
        if Path(dirpath) == root:
            dirs[:] = [d for d in dirs if d not in NOT_ARCHIVE]
        out.extend(Path(dirpath) / f for f in files)
    return out


def verify_archive(root: Path) -> Report:
    return Verifier(root).run()
