"""The committer thread: all disk I/O of the writer, so a slow or dead disk never stalls receiving.

Start: truncate torn tails (one ``torn_line_repaired`` event each), load the record-id index for
today and yesterday. Then, forever: take a batch from the intake queue (at most
``max_batch_records``; at most one commit per ``flush_interval_ms``), drop ids already committed,
route, write one buffer per file, fsync files and new dirs, remember the ids, hand the cumulative
acks to the loop thread. A failed commit is rolled back (no partial line), reported once as a
CRITICAL ``disk_error`` event, and retried as a whole every ``disk_retry_ms`` until it succeeds.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import msgspec

from observer.config import WriterConfig
from observer.schema import GapMarker, SystemEvent
from sinks.writer.files import FileTable
from sinks.writer.index import RecordIndex, days_on_disk
from sinks.writer.partitions import Partitioner, to_kst
from sinks.writer.queue import IntakeQueue, Item
from sinks.writer.repair import repair_tree

log = logging.getLogger("observer.writer")
TRACKS = ("swing", "scalp", "raw", "system", "overflow", "metrics")
_json = msgspec.json.Encoder()
EventFactory = Callable[..., SystemEvent]


def event_item(event: SystemEvent | GapMarker, provider: str) -> Item:
    """A system/events line for the writer's own events and gap markers (never acknowledged)."""
    at = event.start if isinstance(event, GapMarker) else event.at
    return Item(
        track="system",
        provider=event.provider or provider,
        market="",
        partition_at=at,
        record_id=event.record_id,
        line=_json.encode(event),
    )


class Committer(threading.Thread):
    """Owns the FileTable and the RecordIndex. Reads `IntakeQueue`; results go out via `take_acks`."""

    def __init__(
        self,
        root: Path,
        wcfg: WriterConfig,
        queue: IntakeQueue,
        *,
        provider: str,
        make_event: EventFactory,
        today: Callable[[], date],
        wake_fd: int | None = None,
        on_commit: Callable[[list[Item]], None] | None = None,
    ):
        super().__init__(name="writer-committer", daemon=True)
        self.root = root
        self.wcfg = wcfg
        self.queue = queue
        self.provider = provider
        self.make_event = make_event
        self.today = today
        self.wake_fd = wake_fd
        self.on_commit = on_commit  # gets each commit's fresh lines after the fsync (the public feed)
        self.files = FileTable(root)
        self.index = RecordIndex(root)
        self.partitioner = Partitioner(root)
        self._internal: list[Item] = []
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
        today = self.today()
        for track in TRACKS:
            for day in {today, today - timedelta(days=1), *days_on_disk(self.root, track)[-2:]}:
                self.index.preload(track, day)
        for scan in self.index.scans:
            if scan.lines or scan.bad_lines:
                log.info(
                    "record index loaded",
                    extra={
                        "track": scan.track,
                        "day": str(scan.day),
                        "lines": scan.lines,
                        "bad_lines": scan.bad_lines,
                        "seconds": round(scan.seconds, 3),
                    },
                )

    def _loop(self) -> None:
        flush_s = self.wcfg.flush_interval_ms / 1000
        retry_s = self.wcfg.disk_retry_ms / 1000
        pending: list[Item] = []
        last_commit = 0.0
        while True:
            if not pending:
                stopping = self._stopping.is_set()
                items = self.queue.take(self.wcfg.max_batch_records, last_commit + flush_s, 0.2)
                pending, self._internal = self._internal + items, []
                if not pending:
                    if stopping:
                        return
                    continue
            try:
                self._commit(pending)
            except OSError as e:
                self._disk_failed(e, pending)
                self._stopping.wait(retry_s)
                continue
            pending = []
            last_commit = time.monotonic()
            self.partitioner.scalp.forget_older_than()
            if self.disk_error:
                self._disk_recovered()

    def _commit(self, batch: list[Item]) -> None:
        groups: dict[Path, list[bytes]] = {}
        acks: dict[tuple[str, str], int] = {}
        fresh: list[tuple[str, date, str]] = []
        fresh_items: list[Item] = []
        seen: set[tuple[str, date, str]] = set()
        duplicates = 0
        for item in batch:
            if item.ack is not None:
                acks[(item.ack[0], item.ack[1])] = item.ack[2]
            if item.line is None or item.partition_at is None:
                continue
            day = to_kst(item.partition_at).date()
            key = (item.track, day, item.record_id)
            if key in seen or self.index.contains(*key):
                duplicates += 1
                continue
            seen.add(key)
            fresh.append(key)
            fresh_items.append(item)
            if item.path is None:
                item.path = self.partitioner.relpath(
                    item.track, item.provider, item.market, item.partition_at, item.level
                )
            groups.setdefault(item.path, []).append(item.line)
        t0 = time.perf_counter()
        if groups:
            self.files.commit({path: b"\n".join(lines) + b"\n" for path, lines in groups.items()})
            self.commit_ms.append((time.perf_counter() - t0) * 1000)
        for track, day, record_id in fresh:
            self.index.add(track, day, record_id)
            self.written[track] += 1
        if self.on_commit is not None and fresh_items:
            self.on_commit(fresh_items)
        self.duplicates += duplicates
        self.commits += 1
        oldest = min(i.enqueued_ns for i in batch)
        self.lag_ms.append((time.monotonic_ns() - oldest) / 1e6)
        if acks:
            with self._acks_lock:
                for stream, seq in acks.items():
                    if seq > self._acks.get(stream, 0):
                        self._acks[stream] = seq
            self._wake()

    def _wake(self) -> None:
        if self.wake_fd is not None:
            try:
                os.write(self.wake_fd, b"\0")
            except (BlockingIOError, OSError):
                pass  # the pipe is full (a wakeup is pending anyway) or closed at shutdown

    def _disk_failed(self, e: OSError, pending: list[Item]) -> None:
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
        pending.append(event_item(ev, self.provider))  # on disk as soon as the disk takes it
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
