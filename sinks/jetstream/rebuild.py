"""``observer archive from-jetstream``: rebuild an archive directory from the stream.

A durable pull consumer (re-created from the stream's start) reads every message; each line is
written at its recorded offset of its recorded file (``Observer-Path``, ``Observer-Offset``), so
the copy is byte-identical to the writer's archive whatever order the stream holds the lines in.
At the end every file must be covered from byte 0 without a hole or an overlap; a message without
the headers, with a path outside the archive, or a second, different line at one offset is an
error. Files 0600, dirs 0700, fsynced.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import nats.errors
from nats.js import api
from nats.js.errors import NotFoundError

from observer.config import JetStreamConfig, ensure_private_dir
from sinks.jetstream.publisher import OFFSET_HEADER, PATH_HEADER, connect

_MAX_OPEN = 256


class RebuildError(Exception):
    """The archive cannot be rebuilt here (a non-empty target, no such stream)."""


@dataclass
class RebuildReport:
    messages: int = 0
    files: int = 0
    bytes: int = 0
    duplicates: int = 0  # the same line twice at one offset (the stream held it twice)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        state = "ok" if self.ok else f"{len(self.problems)} problem(s)"
        return (
            f"{self.messages} messages -> {self.files} files, {self.bytes} bytes; "
            f"{self.duplicates} duplicate(s); {state}"
        )


class _Files:
    """Writes lines at offsets under `root`; remembers each file's extents (offset -> length)."""

    def __init__(self, root: Path):
        self.root = root
        self.fds: dict[Path, int] = {}
        self.extents: dict[Path, dict[int, bytes]] = {}

    def write(self, rel: Path, offset: int, data: bytes) -> bool:
        """False when another, different line is already at `offset`; True also for a duplicate."""
        extents = self.extents.setdefault(rel, {})
        digest = extents.get(offset)
        if digest is not None:
            return digest == _digest(data)
        extents[offset] = _digest(data)
        fd = self.fds.get(rel)
        if fd is None:
            if len(self.fds) >= _MAX_OPEN:
                self.close(sync=True)
            path = self.root / rel
            for parent in reversed(path.relative_to(self.root).parents[:-1]):
                ensure_private_dir(self.root / parent)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self.fds[rel] = fd
        os.pwrite(fd, data, offset)
        return True

    def close(self, *, sync: bool) -> None:
        for fd in self.fds.values():
            if sync:
                os.fsync(fd)
            os.close(fd)
        self.fds.clear()


def _digest(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data[:16] + data[-16:]


def _safe_rel(path: str) -> Path | None:
    rel = PurePosixPath(path)
    if not path or rel.is_absolute() or ".." in rel.parts or rel.parts[0] in ("logs", "state"):
        return None
    return Path(*rel.parts)


def _check_coverage(files: _Files, report: RebuildReport) -> None:
    for rel, extents in sorted(files.extents.items()):
        end = 0
        for offset in sorted(extents):
            length = int.from_bytes(extents[offset][:4], "big")
            if offset != end:
                what = "hole" if offset > end else "overlap"
                report.problems.append(f"{rel}: {what} at byte {end} (next line starts at {offset})")
            end = max(end, offset + length)
        report.bytes += end
    report.files = len(files.extents)


def _sync_dirs(root: Path) -> None:
    for d in sorted({p.parent for p in root.rglob("*") if p.is_file()} | {root}, key=str, reverse=True):
        fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


async def _consume(jcfg: JetStreamConfig, root: Path, durable: str, idle_s: float) -> RebuildReport:
    report = RebuildReport()
    files = _Files(root)
    nc = await connect(jcfg, lambda: True)
    try:
        js = nc.jetstream()
        try:
            await js.stream_info(jcfg.stream)
        except NotFoundError:
            raise RebuildError(f"no stream {jcfg.stream!r} at {jcfg.url}") from None
        try:
            await js.delete_consumer(jcfg.stream, durable)  # a rebuild always starts at the beginning
        except NotFoundError:
            pass
        consumer = api.ConsumerConfig(deliver_policy=api.DeliverPolicy.ALL, ack_policy=api.AckPolicy.ALL)
        sub = await js.pull_subscribe(
            jcfg.subject_prefix + ".>", durable=durable, stream=jcfg.stream, config=consumer
        )
        while True:
            try:
                msgs = await sub.fetch(1_000, timeout=idle_s)
            except nats.errors.TimeoutError:
                info = await sub.consumer_info()
                if info.num_pending == 0 and info.num_ack_pending == 0:
                    break
                continue
            for msg in msgs:
                _take(msg, files, report)
            await msgs[-1].ack_sync()
    finally:
        files.close(sync=True)
        await nc.close()
    _check_coverage(files, report)
    _sync_dirs(root)
    return report


def _take(msg: Any, files: _Files, report: RebuildReport) -> None:
    report.messages += 1
    headers = msg.headers or {}
    rel = _safe_rel(headers.get(PATH_HEADER, ""))
    offset = headers.get(OFFSET_HEADER, "")
    if rel is None or not offset.isdigit():
        report.problems.append(f"stream seq {msg.metadata.sequence.stream}: no usable path/offset header")
        return
    extents = files.extents.get(rel)
    seen = extents is not None and int(offset) in extents
    if not files.write(rel, int(offset), msg.data + b"\n"):
        report.problems.append(f"{rel}: two different lines at byte {offset}")
    elif seen:
        report.duplicates += 1


def rebuild(jcfg: JetStreamConfig, out: Path, *, durable: str, idle_s: float = 2.0) -> RebuildReport:
    """Rebuild the archive of `jcfg`'s stream into `out` (absent or empty)."""
    if out.exists() and any(out.iterdir()):
        raise RebuildError(f"{out} is not empty: a rebuild writes into an empty directory")
    ensure_private_dir(out)
    return asyncio.run(_consume(jcfg, out.resolve(), durable, idle_s))
