"""Crash repair on start: a partition file whose last line has no ``\\n`` was torn by a crash mid-write
(the writer never acknowledged it, so the producer still has it). The tail is truncated back to the
last ``\\n`` and fsynced; the caller turns each `Repair` into a ``torn_line_repaired`` system event."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ARCHIVE_TOP = ("swing", "scalp", "raw", "system", "metrics")
_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class Repair:
    path: Path
    size_before: int
    bytes_removed: int


def archive_files(root: Path) -> Iterator[Path]:
    """Every ``*.jsonl`` under the archive tracks of `root` (not logs/, state/, backup/)."""
    for top in ARCHIVE_TOP:
        base = root / top
        if not base.is_dir():
            continue
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                if name.endswith(".jsonl"):
                    yield Path(dirpath) / name


def repair_tail(path: Path) -> Repair | None:
    """Truncate a torn last line of `path`; None when the file ends cleanly (or is empty)."""
    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
            return None
        keep = _last_newline_end(fd, size)
        os.ftruncate(fd, keep)
        os.fsync(fd)
        return Repair(path, size, size - keep)
    finally:
        os.close(fd)


def _last_newline_end(fd: int, size: int) -> int:
    end = size
    while end > 0:
        start = max(0, end - _CHUNK)
        chunk = os.pread(fd, end - start, start)
        i = chunk.rfind(b"\n")
        if i >= 0:
            return start + i + 1
        end = start
    return 0


def repair_tree(root: Path) -> list[Repair]:
    return [r for r in (repair_tail(p) for p in archive_files(root)) if r is not None]
