"""Append-only partition files: an LRU of open descriptors, all-or-nothing group commits, the lock.

`FileTable.commit` writes one joined buffer per file and fsyncs every touched file and every
directory that gained an entry. If anything fails (ENOSPC, EIO, ...) every file of the batch is
truncated back to its size before the batch, so a failed commit leaves no partial line and nothing
that would be acknowledged; the caller keeps the batch and retries.
"""

from __future__ import annotations

import errno
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from observer.pidlock import LockHeld, PidLock

FILE_MODE = 0o600
DIR_MODE = 0o700


class WriterLocked(Exception):
    """Another writer holds the data dir."""


@dataclass(slots=True)
class OpenFile:
    path: Path
    fd: int
    size: int


class FileTable:
    """Open append-only files under `root` (relative paths in, absolute on disk)."""

    def __init__(self, root: Path, capacity: int = 64):
        self.root = root
        self.capacity = capacity
        self._open: OrderedDict[Path, OpenFile] = OrderedDict()
        self._dirty_dirs: set[Path] = set()

    # -- opening
    def _ensure_dir(self, directory: Path) -> None:
        if directory.is_dir():
            return
        missing: list[Path] = []
        d = directory
        while not d.is_dir():
            missing.append(d)
            d = d.parent
        for d in reversed(missing):
            try:
                os.mkdir(d, DIR_MODE)
            except FileExistsError:
                pass
            os.chmod(d, DIR_MODE)
            self._dirty_dirs.add(d.parent)
            self._dirty_dirs.add(d)

    def get(self, rel: Path, pinned: set[Path] | frozenset[Path] = frozenset()) -> OpenFile:
        of = self._open.get(rel)
        if of is not None:
            self._open.move_to_end(rel)
            return of
        path = self.root / rel
        self._ensure_dir(path.parent)
        existed = path.exists()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)
            size = os.fstat(fd).st_size
        except OSError:
            os.close(fd)
            raise
        if not existed:
            self._dirty_dirs.add(path.parent)
        of = OpenFile(path, fd, size)
        self._open[rel] = of
        self._evict(pinned)
        return of

    def _evict(self, pinned: set[Path] | frozenset[Path]) -> None:
        # Only files outside the current batch are evicted; they were fsynced by their own commit.
        for rel in list(self._open):
            if len(self._open) <= self.capacity:
                return
            if rel not in pinned:
                os.close(self._open.pop(rel).fd)

    def _drop(self, rel: Path) -> None:
        of = self._open.pop(rel, None)
        if of is not None:
            try:
                os.close(of.fd)
            except OSError:
                pass

    def size(self, rel: Path) -> int:
        """Size of an open file after its last commit."""
        return self._open[rel].size

    # -- committing
    def commit(self, groups: dict[Path, bytes]) -> None:
        """Append each buffer to its file, then fsync files and new dirs. All or nothing; raises OSError."""
        pinned = set(groups)
        before: dict[Path, int] = {}
        try:
            for rel, data in groups.items():
                of = self.get(rel, pinned)
                before[rel] = of.size
                _write_all(of.fd, data)
                of.size += len(data)
            for rel in groups:
                os.fsync(self._open[rel].fd)
            self._sync_dirs()
        except OSError:
            self._rollback(before)
            raise

    def _sync_dirs(self) -> None:
        for d in sorted(self._dirty_dirs, key=lambda p: len(p.parts), reverse=True):
            fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            self._dirty_dirs.discard(d)

    def _rollback(self, before: dict[Path, int]) -> None:
        for rel, size in before.items():
            of = self._open.get(rel)
            if of is None:
                continue
            try:
                os.ftruncate(of.fd, size)
                of.size = size
            except OSError:
                # Cannot even truncate: forget the descriptor; the size is re-read on reopen and a
                # torn tail is repaired by the next start.
                self._drop(rel)

    def close(self) -> None:
        for rel in list(self._open):
            self._drop(rel)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n <= 0:
            raise OSError(errno.EIO, "write returned no progress")
        view = view[n:]


class DataDirLock:
    """An exclusive `flock` on ``<state>/writer.lock``: one writer per data dir."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = PidLock(path)

    def acquire(self) -> None:
        try:
            self._lock.acquire()
        except LockHeld as e:
            raise WriterLocked(
                f"another writer (pid {e.holder}) holds {self.path}; two writers cannot share a data dir"
            ) from None

    def release(self) -> None:
        self._lock.release()
