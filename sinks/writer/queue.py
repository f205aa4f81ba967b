"""The intake queue between the receive loop and the committer thread.

It carries `Chunk` s, one per received bus batch: the lines that passed the checks and the cumulative
ack that covers the batch (rejected messages are acknowledged too: they are reported, never retried).
Bounded in bytes by the *producer* side: the worker checks `nbytes` against ``writer.queue_bytes``
and stops reading the archive socket while it is over (so the rest waits in the core's replay
buffer, whose own bound turns overflow into a gap marker). `put` itself never refuses: the writer's
own events and gap markers must always get through.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

from observer.schema import ArchiveRecord

ITEM_OVERHEAD_BYTES = 200

Item = tuple[ArchiveRecord, bytes]
"""One line to commit: the checked message and its line: ``rec.line`` as received (a
``msgspec.Raw``, a view of the bus message that it keeps alive: ``len``, the buffer protocol and
``b"\n".join`` work, bytes methods do not) or bytes (the writer's own lines, slow-path checks)."""


@dataclass(slots=True)
class Chunk:
    """Lines received together (at one mitigation level) and the ack (producer, run, seq) that
    covers them, if any."""

    items: list[Item]
    ack: tuple[str, str, int] | None = None
    level: int = 0
    enqueued_ns: int = field(default_factory=time.monotonic_ns)
    nbytes: int = 0

    def __post_init__(self) -> None:
        if not self.nbytes:
            self.nbytes = sum([len(line) for _, line in self.items]) + ITEM_OVERHEAD_BYTES * len(self.items)


class IntakeQueue:
    def __init__(self) -> None:
        self._chunks: deque[Chunk] = deque()
        self._cond = threading.Condition()
        self.nbytes = 0
        self.records = 0
        self._wake_at = 1
        self._hurry = False
        self._interrupted = False

    def __len__(self) -> int:
        return self.records

    def put(self, chunk: Chunk) -> None:
        with self._cond:
            self._chunks.append(chunk)
            self.nbytes += chunk.nbytes
            self.records += len(chunk.items)
            if len(self._chunks) == 1 or self.records >= self._wake_at:
                self._cond.notify()

    def hurry(self) -> None:
        """Make a waiting `take` return now (shutdown: drain without lingering)."""
        with self._cond:
            self._hurry = True
            self._cond.notify_all()

    def interrupt(self) -> None:
        """Make a waiting (or the next) `take` return [] now (the committer's write has finished)."""
        with self._cond:
            self._interrupted = True
            self._cond.notify_all()

    def take(self, max_records: int, not_before: float, idle_timeout_s: float) -> list[Chunk]:
        """Wait up to `idle_timeout_s` for a first chunk, then until monotonic time `not_before` or
        until `max_records` lines are waiting (or `hurry`), and return chunks in order holding about
        `max_records` lines (whole chunks: at least one). After an `interrupt`: [] at once."""
        with self._cond:
            if not self._chunks and not self._hurry and not self._interrupted:
                self._cond.wait(idle_timeout_s)
                if not self._chunks:
                    self._interrupted = False
                    return []
            self._wake_at = max_records
            while self.records < max_records and not self._hurry and not self._interrupted:
                remaining = not_before - time.monotonic()
                if remaining <= 0 or not self._cond.wait(remaining):
                    break
            self._wake_at = 1
            if self._interrupted:
                self._interrupted = False
                return []
            out: list[Chunk] = []
            n = 0
            while self._chunks and (not out or n + len(self._chunks[0].items) <= max_records):
                chunk = self._chunks.popleft()
                out.append(chunk)
                n += len(chunk.items)
                self.nbytes -= chunk.nbytes
            self.records -= n
            return out
