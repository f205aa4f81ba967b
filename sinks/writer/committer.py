"""The committer thread: all disk I/O of the writer, so a slow or dead disk never stalls receiving.

Start: truncate torn tails (one ``torn_line_repaired`` event each), rebuild the de-duplication
window (`sinks.writer.index`) from what was committed since its older mark. Then, forever: take
chunks from the intake queue (about ``max_batch_records`` lines; at most one commit per
``flush_interval_ms``), prepare a group commit (drop ids already committed or being written, route,
cached per partition and 10 minutes, group the lines per file), have a `_Write` thread write one
buffer per file and fsync files and new dirs, and only then remember the ids (rotating the window's
generation and its mark on disk when it is full) and hand the cumulative acks to the loop thread.
While a backlog waits, the next commit is prepared during the previous one's write and fsync (which
release the GIL): the two took turns before, and together they bound records/s. Commits still reach
the disk one after another, in order. A failed commit is rolled back (no partial line), reported
once as a CRITICAL ``disk_error`` event, and retried as a whole every ``disk_retry_ms`` until it
succeeds, before the next one is written.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timezone, tzinfo
from pathlib import Path

import msgspec

from observer.clock import kst_date
from observer.config import WriterConfig
from observer.schema import ArchiveRecord, GapMarker, SystemEvent
from sinks.writer.files import FileTable
from sinks.writer.index import (
    KEPT_TRACKS,
    DayIds,
    RecentIds,
    WindowMarks,
    load_day_ids,
    load_window,
    track_of,
    track_salt,
)
from sinks.writer.partitions import Partitioner
from sinks.writer.queue import Chunk, IntakeQueue, Item
from sinks.writer.repair import archive_files, repair_tree

log = logging.getLogger("observer.writer")
TRACKS = ("swing", "scalp", "raw", "system", "overflow", "metrics")
_json = msgspec.json.Encoder()
EventFactory = Callable[..., SystemEvent]
_ROUTE_CACHE_MAX = 4096
#: a committed line and where it is: (file relative to the root, byte offset of the line, item)
Placed = tuple[Path, int, Item]


def _ten_minute_zone(zone: tzinfo | None, known: set[tzinfo]) -> bool:
    """Whether `zone` is a fixed offset of whole 10 minutes (KST, UTC: what the core writes);
    remembered in `known` when it is. A zone with rules (DST) is not fixed: False."""
    if type(zone) is not timezone:
        return False
    offset = zone.utcoffset(None)
    if offset.total_seconds() % 600:
        return False
    known.add(zone)
    return True


@dataclass(slots=True)
class _Staged:
    """A prepared group commit: the lines per file and all that follows once they are fsynced."""

    groups: dict[Path, list[bytes]] = field(default_factory=dict)
    acks: dict[tuple[str, str], int] = field(default_factory=dict)
    fresh: set[int] = field(default_factory=set)
    kept_fresh: list[tuple[set[int], int]] = field(default_factory=list)  # (day's ids, key) to remember
    fresh_items: list[Item] | None = None  # for `on_commit`
    placed: dict[Path, list[Item]] | None = None  # for `on_archived`
    nbytes: int = 0
    duplicates: int = 0
    oldest_ns: int = 0
    write: _Write | None = None


class _Write(threading.Thread):
    """One commit's write and fsync (`FileTable.commit`), off the committer thread. Daemon, like the
    committer: a disk that never answers must not keep the process from exiting."""

    def __init__(self, committer: Committer, staged: _Staged):
        super().__init__(name="writer-sync", daemon=True)
        self.committer = committer
        self.staged = staged
        self.error: BaseException | None = None
        self.done = False  # set before the committer is woken: it may then `_finish`

    def run(self) -> None:
        try:
            self.committer._write(self.staged)
        except BaseException as e:  # OSError: the committer retries; anything else it re-raises
            self.error = e
        finally:
            self.done = True
            self.committer.queue.interrupt()  # a committer waiting for lines finishes this one now


def event_item(event: SystemEvent | GapMarker, provider: str) -> Item:
    """A system/events line for the writer's own events and gap markers (never acknowledged)."""
    at = event.start if isinstance(event, GapMarker) else event.at
    line = _json.encode(event)
    rec = ArchiveRecord(
        track="system",
        provider=event.provider or provider,
        market="",
        partition_at=at,
        record_id=event.record_id,
        line=msgspec.Raw(line),
    )
    return rec, line


class Committer(threading.Thread):
    """Owns the FileTable and the RecentIds window. Reads `IntakeQueue`; results go out via `take_acks`."""

    def __init__(
        self,
        root: Path,
        wcfg: WriterConfig,
        queue: IntakeQueue,
        *,
        provider: str,
        make_event: EventFactory,
        marks_path: Path,
        generation_bytes: int,
        wake_fd: int | None = None,
        on_commit: Callable[[list[Item]], None] | None = None,
        on_archived: Callable[[list[Placed]], None] | None = None,
    ):
        super().__init__(name="writer-committer", daemon=True)
        self.root = root
        self.wcfg = wcfg
        self.queue = queue
        self.provider = provider
        self.make_event = make_event
        self.wake_fd = wake_fd
        self.on_commit = on_commit  # gets each commit's fresh lines after the fsync (the public feed)
        # gets each commit's fresh lines with their file and offset after the fsync (the archive stream)
        self.on_archived = on_archived
        self.files = FileTable(root)
        self.window = RecentIds(generation_bytes)
        self.day_ids = DayIds()  # the kept tracks' ids of the whole day: re-created lines, not only resent
        self.marks = WindowMarks(marks_path)
        self.partitioner = Partitioner(root)
        self._routes: dict[tuple[object, ...], Path] = {}
        self._ten_minute_zones: set[tzinfo] = set()
        self._salts = {track: track_salt(track) for track in TRACKS}
        # size after the last commit of every file written in this / the previous generation
        self._touched: dict[Path, int] = {}
        self._touched_prev: dict[Path, int] = {}
        self._internal: list[Item] = []
        self._writing: _Staged | None = None  # the commit a `_Write` thread is writing and fsyncing
        self._acks: dict[tuple[str, str], int] = {}
        self._acks_lock = threading.Lock()
        self._stopping = threading.Event()
        self.ready = threading.Event()
        self.alerts: deque[SystemEvent] = deque(maxlen=100)
        self.failure: BaseException | None = None
        # figures (read by the loop thread)
        self.written: dict[str, int] = dict.fromkeys(TRACKS, 0)
        self.duplicates = 0
        self.commits = 0
        self.disk_error = False
        self.disk_errors = 0
        self.repairs = 0
        self.commit_ms: deque[float] = deque(maxlen=512)
        self.lag_ms: deque[float] = deque(maxlen=512)

    # -- control (loop thread)
    def stop(self) -> None:
        self._stopping.set()
        self.queue.hurry()

    def take_acks(self) -> dict[tuple[str, str], int]:
        with self._acks_lock:
            acks, self._acks = self._acks, {}
        return acks

    # -- the thread
    def run(self) -> None:
        try:
            self._startup()
            self.ready.set()
            self._loop()
        except BaseException as e:  # a bug: the worker sees `failure` and crashes visibly
            self.failure = e
            log.exception("committer thread died")
        finally:
            if self._writing is not None and self._writing.write is not None:
                self._writing.write.join()  # its files stay open until it is done
            self.files.close()
            self._wake()

    def _startup(self) -> None:
        for r in repair_tree(self.root):
            self.repairs += 1
            rel = r.path.relative_to(self.root)
            ev = self.make_event(
                "torn_line_repaired",
                "WARNING",
                f"truncated a torn last line of {rel} ({r.bytes_removed} bytes)",
                file=str(rel),
                bytes_removed=r.bytes_removed,
                size_before=r.size_before,
            )
            log.warning(ev.message, extra={"file": str(rel), "bytes_removed": r.bytes_removed})
            self._internal.append(event_item(ev, self.provider))
        self.marks.load()
        files = sorted(archive_files(self.root))
        kept_lines = load_day_ids(self.root, files, self.day_ids)
        loaded = load_window(self.root, files, self.marks, self.window)
        log.info(
            "de-duplication window loaded",
            extra={
                "files": loaded.files,
                "lines": loaded.lines,
                "bad_lines": loaded.bad_lines,
                "bytes": loaded.bytes_read,
                "seconds": round(loaded.seconds, 3),
                "from_marks": loaded.from_marks,
                "day_ids_lines": kept_lines,
            },
        )
        # what was loaded is the old generation; the young one starts here, with a mark
        self.window.rotate()
        self._touched_prev = self._sizes_now(loaded.paths)
        self.marks.push(self._touched_prev, keep_oldest=True)

    def _loop(self) -> None:
        flush_s = self.wcfg.flush_interval_ms / 1000
        max_records = self.wcfg.max_batch_records
        last_commit = 0.0
        while True:
            writing = self._writing
            if writing is not None and writing.write is not None and writing.write.done:
                self._finish(writing)
                writing = self._writing = None
            if writing is None:
                # only while no decided scalp file start is still unwritten (it would be forgotten)
                self.partitioner.scalp.forget_older_than()
            stopping = self._stopping.is_set()
            # returns [] early when the write finishes: its acks must not wait for the next batch
            pending = self.queue.take(max_records, last_commit + flush_s, 0.2)
            if self._internal:
                pending.insert(0, Chunk(self._internal))
                self._internal = []
            if not pending:
                if stopping:
                    if writing is None:
                        return
                    self._finish(writing)
                    self._writing = None
                continue
            staged = self._prepare(pending, writing.fresh if writing is not None else set())
            if writing is not None:
                self._finish(writing)
            self._start_write(staged)
            self._writing = staged
            last_commit = time.monotonic()

    def _commit(self, batch: list[Chunk]) -> None:
        """One group commit, start to end (raises the OSError of a failed write)."""
        staged = self._prepare(batch, set())
        self._write(staged)
        self._committed(staged)

    def _prepare(self, batch: list[Chunk], writing: set[int]) -> _Staged:
        """A commit of the lines of `batch` not committed before nor in `writing` (the ids of the
        commit being written, which is fsynced before this one is written)."""
        staged = _Staged(
            fresh_items=[] if self.on_commit is not None else None,
            placed={} if self.on_archived is not None else None,
            oldest_ns=min(c.enqueued_ns for c in batch),
        )
        self._stage(batch, staged, writing)
        return staged

    def _stage(self, batch: Iterable[Chunk], staged: _Staged, writing: set[int]) -> None:
        groups, acks, fresh = staged.groups, staged.acks, staged.fresh
        fresh_items, placed, kept_fresh = staged.fresh_items, staged.placed, staged.kept_fresh
        young, old, salts = self.window.young, self.window.old, self._salts
        day_ids_of: dict[object, set[int]] = {}  # partition time -> its day's kept ids (per commit)
        routes, ten_minute_zones = self._routes, self._ten_minute_zones
        duplicates = nbytes = 0
        for chunk in batch:
            if chunk.ack is not None:
                acks[(chunk.ack[0], chunk.ack[1])] = chunk.ack[2]
            level = chunk.level
            for item in chunk.items:
                rec, line = item
                key = hash(rec.record_id) ^ salts[rec.track]
                if key in fresh or key in writing or key in young or key in old:
                    duplicates += 1
                    continue
                if rec.track in KEPT_TRACKS:
                    day_ids = day_ids_of.get(rec.partition_at)
                    if day_ids is None:
                        day_ids = day_ids_of[rec.partition_at] = self.day_ids.day(kst_date(rec.partition_at))
                    if key in day_ids:
                        duplicates += 1
                        continue
                    kept_fresh.append((day_ids, key))
                fresh.add(key)
                nbytes += len(line)
                if fresh_items is not None:
                    fresh_items.append(item)
                # every partition boundary (KST day and hour, scalp period) is a multiple of 10 minutes
                # in UTC too: lines of one 10-minute slice share a file while no new scalp file starts.
                # In a zone whose offset is whole 10 minutes, the local fields name that slice: no
                # timestamp() (a third of this loop's time)
                at = rec.partition_at
                zone = at.tzinfo
                rkey: tuple[object, ...]
                if zone in ten_minute_zones or _ten_minute_zone(zone, ten_minute_zones):
                    rkey = (rec.track, rec.provider, rec.market, level, zone, at.year, at.month, at.day, at.hour,
                            at.minute // 10)  # fmt: skip
                else:
                    rkey = (rec.track, rec.provider, rec.market, level, int(at.timestamp()) // 600)
                path = routes.get(rkey)
                if path is None:
                    path = self._route(rec, level, rkey)
                lines = groups.get(path)
                if lines is None:
                    groups[path] = [line]
                else:
                    lines.append(line)
                if placed is not None:
                    placed.setdefault(path, []).append(item)
        staged.duplicates += duplicates
        staged.nbytes += nbytes

    def _start_write(self, staged: _Staged) -> None:
        staged.write = _Write(self, staged)
        staged.write.start()

    def _write(self, staged: _Staged) -> None:
        """Write and fsync `staged` (all or nothing); in a `_Write` thread or, retrying, the committer's."""
        t0 = time.perf_counter()
        if staged.groups:
            # the last line's newline joined in too, rather than copying the buffer again
            self.files.commit({path: b"\n".join([*lines, b""]) for path, lines in staged.groups.items()})
            self.commit_ms.append((time.perf_counter() - t0) * 1000)

    def _finish(self, staged: _Staged) -> None:
        """Wait for the write of `staged`, retry it until it succeeds, then remember and acknowledge."""
        assert staged.write is not None
        staged.write.join()
        error = staged.write.error
        retry_s = self.wcfg.disk_retry_ms / 1000
        while error is not None:
            if not isinstance(error, OSError):
                raise error
            self._disk_failed(error, staged)
            self._stopping.wait(retry_s)
            try:
                self._write(staged)
                error = None
            except OSError as e:
                error = e
        self._committed(staged)
        if self.disk_error:
            self._disk_recovered()

    def _committed(self, staged: _Staged) -> None:
        """`staged` is durable: remember its ids, pass its lines on, hand its acks to the loop thread."""
        for path, lines in staged.groups.items():
            self._touched[path] = self.files.size(path)
            self.written[track_of(path) or "system"] += len(lines)
        self.window.young.update(staged.fresh)
        for day_ids, key in staged.kept_fresh:
            day_ids.add(key)
        if self.on_commit is not None and staged.fresh_items:
            self.on_commit(staged.fresh_items)
        if self.on_archived is not None and staged.placed:
            self.on_archived(self._offsets(staged.placed))
        if self.window.committed(staged.nbytes):
            self._rotate()
        self.duplicates += staged.duplicates
        self.commits += 1
        self.lag_ms.append((time.monotonic_ns() - staged.oldest_ns) / 1e6)
        if staged.acks:
            with self._acks_lock:
                for stream, seq in staged.acks.items():
                    if seq > self._acks.get(stream, 0):
                        self._acks[stream] = seq
            self._wake()

    def _offsets(self, placed: dict[Path, list[Item]]) -> list[Placed]:
        """Each committed line with the byte offset it starts at (the file's size after the commit,
        minus what this commit appended)."""
        out: list[Placed] = []
        for path, items in placed.items():
            offset = self.files.size(path) - sum(len(line) + 1 for _, line in items)
            for item in items:
                out.append((path, offset, item))
                offset += len(item[1]) + 1
        return out

    def _route(self, rec: ArchiveRecord, level: int, rkey: tuple[object, ...]) -> Path:
        started = self.partitioner.scalp.files_started
        path = self.partitioner.relpath(rec.track, rec.provider, rec.market, rec.partition_at, level)
        if self.partitioner.scalp.files_started != started or len(self._routes) >= _ROUTE_CACHE_MAX:
            self._routes.clear()  # a new scalp file can change where other 10-minute slices go
        self._routes[rkey] = path
        return path

    def _rotate(self) -> None:
        """The young generation is full: freeze it, and mark on disk where the next one starts."""
        self.window.rotate()
        sizes = {**self._touched_prev, **self._touched}
        self.marks.push(sizes)
        self._touched_prev, self._touched = sizes, {}

    def _sizes_now(self, paths: list[Path]) -> dict[Path, int]:
        out: dict[Path, int] = {}
        for path in paths:
            try:
                out[path.relative_to(self.root)] = path.stat().st_size
            except FileNotFoundError:
                continue
        return out

    def _wake(self) -> None:
        if self.wake_fd is not None:
            try:
                os.write(self.wake_fd, b"\0")
            except (BlockingIOError, OSError):
                pass  # the pipe is full (a wakeup is pending anyway) or closed at shutdown

    def _disk_failed(self, e: OSError, staged: _Staged) -> None:
        self.disk_errors += 1
        if self.disk_error:
            return
        self.disk_error = True
        ev = self.make_event(
            "disk_error",
            "CRITICAL",
            f"archive write failed ({e.strerror or e}); nothing more is acknowledged, retrying every "
            f"{self.wcfg.disk_retry_ms} ms",
            errno=e.errno,
            error=str(e.strerror or e),
        )
        log.critical(ev.message, extra={"errno": e.errno})
        # joins the failed commit: on disk as soon as the disk takes it
        self._stage([Chunk([event_item(ev, self.provider)])], staged, set())
        self.alerts.append(ev)

    def _disk_recovered(self) -> None:
        self.disk_error = False
        ev = self.make_event(
            "disk_recovered",
            "INFO",
            f"archive writes resumed after {self.disk_errors} failed commits",
            failed_commits=self.disk_errors,
        )
        log.warning(ev.message)
        self._internal.append(event_item(ev, self.provider))
        self.alerts.append(ev)
