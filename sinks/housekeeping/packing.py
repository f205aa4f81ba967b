"""Streaming a family's files into one ``tar.gz``: each archive file is read once, hashed and
line-counted on its way into the tar, and the compressed stream is hashed as it is written, so a
package costs one pass over the day (see bench/bench_backup.py). A file still being appended to
contributes its complete lines only.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from sinks.housekeeping.layout import DayFile
from sinks.housekeeping.manifest import CHUNK_BYTES, FamilyEntry, FileEntry, MemberEntry

_TAIL_PROBE_BYTES = 64 * 1024


class PackingStopped(Exception):
    """The caller asked to stop (its ``should_stop`` answered True) between two reads."""


def complete_line_length(path: Path, size: int) -> int:
    """Length of the longest prefix of the first `size` bytes that ends with a newline."""
    if size <= 0:
        return 0
    with open(path, "rb") as fh:
        end = size
        while end > 0:
            start = max(0, end - _TAIL_PROBE_BYTES)
            fh.seek(start)
            block = fh.read(end - start)
            i = block.rfind(b"\n")
            if i >= 0:
                return start + i + 1
            end = start
    return 0


class _HashingWriter:
    """File-like sink for the gzip stream: writes through and hashes what it writes."""

    def __init__(self, fh: IO[bytes]):
        self._fh = fh
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self._fh.write(data)

    def flush(self) -> None:
        self._fh.flush()


class _MemberReader:
    """Reads exactly `limit` bytes of an archive file for tarfile, hashing and counting lines."""

    def __init__(self, fh: IO[bytes], limit: int, should_stop: Callable[[], bool]):
        self._fh = fh
        self._left = limit
        self._should_stop = should_stop
        self.sha = hashlib.sha256()
        self.lines = 0

    def read(self, n: int = -1) -> bytes:
        if self._should_stop():
            raise PackingStopped("stop requested")
        want = self._left if n < 0 else min(n, self._left)
        data = self._fh.read(want) if want > 0 else b""
        self._left -= len(data)
        self.sha.update(data)
        self.lines += data.count(b"\n")
        return data


def pack_family(
    family: str,
    files: list[DayFile],
    out_path: Path,
    file_mode: int,
    gid: int | None,
    compress_level: int,
    should_stop: Callable[[], bool],
) -> tuple[FamilyEntry, FileEntry, int]:
    """Write `files` (their complete lines) into the new tar.gz `out_path`; its manifest entries
    and the archive bytes packed. Raises `PackingStopped` and OSError/TarError; the caller removes
    what was written."""
    members: list[MemberEntry] = []
    packed = 0
    fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, file_mode)
    with os.fdopen(fd, "wb") as raw:
        if gid is not None:
            os.fchown(raw.fileno(), -1, gid)
        os.fchmod(raw.fileno(), file_mode)
        sink = _HashingWriter(raw)
        with tarfile.open(
            fileobj=sink,  # type: ignore[call-overload]
            mode="w:gz",
            compresslevel=compress_level,
            format=tarfile.PAX_FORMAT,
        ) as tar:
            tar.copybufsize = CHUNK_BYTES
            for f in files:
                try:
                    src = open(f.path, "rb")  # noqa: SIM115 - closed below, size decided first
                except FileNotFoundError:
                    continue  # removed since it was listed: not part of the day any more
                with src:
                    st = os.fstat(src.fileno())
                    length = complete_line_length(f.path, st.st_size)
                    info = tarfile.TarInfo(f.name)
                    info.size = length
                    info.mode = 0o600
                    info.mtime = int(st.st_mtime)
                    reader = _MemberReader(src, length, should_stop)
                    tar.addfile(info, reader)  # type: ignore[arg-type]
                members.append(
                    MemberEntry(name=f.name, size=length, sha256=reader.sha.hexdigest(), lines=reader.lines)
                )
                packed += length
        raw.flush()
        os.fsync(raw.fileno())
    fam = FamilyEntry(family=family, archive=out_path.name, members=members)
    return fam, FileEntry(name=out_path.name, size=sink.size, sha256=sink.sha.hexdigest()), packed
