"""The de-duplication window: ids of the most recently committed lines, which is all a producer can resend.

Why a window suffices. A line reaches the writer a second time only when a producer resends it, and a
producer resends only what it has not seen acknowledged, out of its replay buffer, bounded by
``bus.replay_buffer_bytes`` of encoded bodies (an ``ArchiveRecord`` body is longer than its line).
After a writer restart the core resends from its oldest unacknowledged record: everything the writer
committed after that record is still in the core's buffer, so it lies within the last
``replay_buffer_bytes`` of committed lines. After a core restart the collectors resend what the old
core had not acknowledged upstream; the core acknowledges upstream as soon as the writer acknowledges
(plus one sample window), so the lines it re-derives are the last ones committed. Within one writer
run, resends of a producer run are dropped by seq already (`observer.reliable`).

Memory. Two generations, ``young`` and ``old``, sets of 64-bit id hashes (``hash()`` is salted per
process, which is fine since the window is rebuilt per process; ~70 bytes per id, sets because the
membership test is on the hot path: a sorted ``array('Q')`` took 8 bytes but ~1 µs per miss). When
``young`` has taken ``generation_bytes`` of lines it becomes ``old`` and the previous ``old`` is
dropped, so the window covers at least ``generation_bytes`` and at most twice that (plus the commit
that filled each; three generations right after a start) of the latest lines, however long the day (the per-day index it replaces grew ~50 bytes per record all day): with the
default (``bus.replay_buffer_bytes``, 64 MiB) and ~600-byte lines, ~220 k ids, ~15 MB. A false
"already committed" has probability ~n²/2⁶⁵ for n ids in the window (~1e-9 at 220 k).

The window covers *resends*. Some lines come back as *re-creations* instead, long after their first
copy: a restarted rest-collector re-runs the sweep it was killed in (same swing record_ids minutes
later; at x10 activity the window spans ~2.5 minutes), a restarted housekeeper or monitor re-emits a
once-per-day event, a collector marks the same missed mark again. Those tracks are small (a day of
swing is ~160 k lines), so `DayIds` keeps every id of the ``KEPT_TRACKS`` for the latest two KST
partition days (~20 MB), rebuilt on start from those days' files. Scalp and raw lines are only ever
resent (their ids carry a sample window or a collector run + seq), so the window bounds them.

Across writer restarts (`WindowMarks`): at every rotation the committer records, in
``<state>/writer_window.json``, the size of every file written in the last two generations (where the
new ``young`` starts) and the wall time. On start every line appended after the older of the two marks
is read back: a file named in it from its recorded size, a file not named but modified after it from
the beginning (the repair of torn tails runs first). Without marks (a fresh state dir next to an
existing archive) the files of each track's latest two days are read, as the per-day index did.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import msgspec

from observer.atomic import write_atomic
from observer.days import DAY_KEY, day_of_key

MARK_SLACK_NS = 2_000_000_000  # mtime granularity and a clock step between a commit and its mark


class _IdOnly(msgspec.Struct):
    record_id: str


_id_decoder = msgspec.json.Decoder(_IdOnly)


def track_salt(track: str) -> int:
    return hash(track)


def id_key(track: str, record_id: str) -> int:
    """A record id is unique within its track: the key mixes both (``hash(id) ^ track_salt``)."""
    return hash(record_id) ^ hash(track)


def track_of(rel: Path) -> str | None:
    """The archive track of a file path relative to the data dir."""
    parts = rel.parts
    if not parts:
        return None
    if parts[0] in ("swing", "scalp", "raw", "metrics"):
        return parts[0]
    if parts[0] == "system" and len(parts) > 1:
        return {"events": "system", "overflow": "overflow"}.get(parts[1])
    return None


class RecentIds:
    """The window of committed ids; see the module docstring. The committer reads ``young`` and
    ``old`` directly (membership is on its hot path) and adds a commit's ids with ``young.update``."""

    __slots__ = ("_young_bytes", "generation_bytes", "old", "rotations", "young")

    def __init__(self, generation_bytes: int):
        self.generation_bytes = generation_bytes
        self.young: set[int] = set()
        self.old: set[int] = set()
        self._young_bytes = 0
        self.rotations = 0

    def __len__(self) -> int:
        return len(self.young) + len(self.old)

    def __contains__(self, key: int) -> bool:
        return key in self.young or key in self.old

    def add(self, key: int) -> None:
        self.young.add(key)

    def committed(self, nbytes: int) -> bool:
        """Count `nbytes` of lines committed; True when the young generation is full (rotate now)."""
        self._young_bytes += nbytes
        return self._young_bytes >= self.generation_bytes

    def rotate(self) -> None:
        """Young becomes old; the previous old generation is dropped."""
        self.old = self.young
        self.young = set()
        self._young_bytes = 0
        self.rotations += 1


KEPT_TRACKS = frozenset({"swing", "system", "overflow", "metrics"})
KEPT_DAYS = 2


class DayIds:
    """Every committed id of the `KEPT_TRACKS`, per KST partition day, for the latest `KEPT_DAYS` days."""

    __slots__ = ("by_day",)

    def __init__(self) -> None:
        self.by_day: dict[date, set[int]] = {}

    def __len__(self) -> int:
        return sum(len(s) for s in self.by_day.values())

    def __contains__(self, key: int) -> bool:
        return any(key in ids for ids in self.by_day.values())

    def day(self, day: date) -> set[int]:
        """The id set of `day` (created, and the oldest beyond `KEPT_DAYS` dropped, when new)."""
        ids = self.by_day.get(day)
        if ids is None:
            ids = self.by_day[day] = set()
            for old in sorted(self.by_day)[:-KEPT_DAYS]:
                del self.by_day[old]
        return ids


def load_day_ids(root: Path, files: list[Path], into: DayIds) -> int:
    """Fill `into` from the kept tracks' files of their two latest days; the number of lines read."""
    kept = [p for p in files if track_of(p.relative_to(root)) in KEPT_TRACKS]
    lines = 0
    for path in latest_days(root, kept, KEPT_DAYS):
        rel = path.relative_to(root)
        track, day = track_of(rel), _day_of(rel)
        if track is None or day is None:
            continue
        try:
            lines += read_ids_from(path, 0, track, into.day(day).add)[0]
        except FileNotFoundError:
            continue
    return lines


class Mark(msgspec.Struct, frozen=True):
    at_ns: int
    sizes: dict[str, int]


class _MarkFile(msgspec.Struct):
    marks: list[Mark]


@dataclass(frozen=True, slots=True)
class LoadResult:
    files: int
    lines: int
    bad_lines: int
    bytes_read: int
    seconds: float
    from_marks: bool
    paths: list[Path]


class WindowMarks:
    """Where each generation started, on disk, so a restarted writer can rebuild the window."""

    def __init__(self, path: Path):
        self.path = path
        self.marks: list[Mark] = []

    def load(self) -> bool:
        try:
            self.marks = msgspec.json.decode(self.path.read_bytes(), type=_MarkFile).marks[-2:]
        except (FileNotFoundError, msgspec.DecodeError):
            self.marks = []
        return bool(self.marks)

    def push(self, sizes: dict[Path, int], *, keep_oldest: bool = False) -> None:
        """Record a new generation start (atomically, durably) after the previous one, or, on start
        (`keep_oldest`), after the oldest: what was loaded from it is still the old generation."""
        mark = Mark(time.time_ns(), {str(k): v for k, v in sizes.items()})
        self.marks = [*(self.marks[:1] if keep_oldest else self.marks[-1:]), mark]
        write_atomic(self.path, msgspec.json.encode(_MarkFile(self.marks)), sync_dir=True)

    def oldest(self) -> Mark | None:
        return self.marks[0] if self.marks else None


def read_ids_from(path: Path, offset: int, track: str, add: Callable[[int], None]) -> tuple[int, int, int]:
    """Add the ids of the lines of `path` from byte `offset` on; (lines, bad lines, bytes read)."""
    lines = bad = nbytes = 0
    with open(path, "rb") as f:
        f.seek(offset)
        for line in f:
            nbytes += len(line)
            lines += 1
            try:
                add(id_key(track, _id_decoder.decode(line).record_id))
            except msgspec.DecodeError:
                bad += 1
    return lines, bad, nbytes


def load_window(root: Path, files: list[Path], marks: WindowMarks, into: RecentIds) -> LoadResult:
    """Fill `into` with every line committed since the older mark (see the module docstring).

    `files`: every archive file under `root`; without a mark, those of each track's two latest days.
    """
    t0 = time.perf_counter()
    mark = marks.oldest()
    n_files = lines = bad = nbytes = 0
    read: list[Path] = []
    if mark is None:
        chosen = [(p, 0) for p in latest_days(root, files, 2)]
    else:
        chosen = []
        for path in files:
            rel = str(path.relative_to(root))
            offset = mark.sizes.get(rel)
            if offset is None:
                try:
                    if path.stat().st_mtime_ns < mark.at_ns - MARK_SLACK_NS:
                        continue
                except FileNotFoundError:
                    continue
                offset = 0
            chosen.append((path, offset))
    for path, offset in chosen:
        track = track_of(path.relative_to(root))
        if track is None:
            continue
        try:
            got = read_ids_from(path, offset, track, into.add)
        except FileNotFoundError:
            continue
        n_files += 1
        read.append(path)
        lines, bad, nbytes = lines + got[0], bad + got[1], nbytes + got[2]
    return LoadResult(n_files, lines, bad, nbytes, time.perf_counter() - t0, mark is not None, read)


def _day_of(rel: Path) -> date | None:
    for part in rel.parts[1:]:
        name = part.removesuffix(".jsonl").removesuffix("_overflow")
        if DAY_KEY.match(name):
            return day_of_key(name)
    return None


def latest_days(root: Path, files: list[Path], days: int) -> list[Path]:
    """The files of each track's `days` latest KST dates (the fallback without marks)."""
    by_track: dict[str, dict[date, list[Path]]] = {}
    for path in files:
        rel = path.relative_to(root)
        track, day = track_of(rel), _day_of(rel)
        if track is not None and day is not None:
            by_track.setdefault(track, {}).setdefault(day, []).append(path)
    out: list[Path] = []
    for per_day in by_track.values():
        for day in sorted(per_day)[-days:]:
            out.extend(sorted(per_day[day]))
    return out
