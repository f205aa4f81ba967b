"""The intake queue between the receive loop and the committer thread.

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
from datetime import datetime
from pathlib import Path

ITEM_OVERHEAD_BYTES = 200


@dataclass(slots=True)
class Item:
    """One line to commit (``line`` None: only an ack to pass through, e.g. for a rejected message)."""

    track: str
    provider: str
    market: str
    partition_at: datetime | None
    record_id: str
    line: bytes | None
    level: int = 0
    ack: tuple[str, str, int] | None = None
    enqueued_ns: int = field(default_factory=time.monotonic_ns)
    path: Path | None = None  # routed once, kept across retries

    @property
    def nbytes(self) -> int:
        return (len(self.line) if self.line is not None else 0) + ITEM_OVERHEAD_BYTES


class IntakeQueue:
    def __init__(self) -> None:
        self._items: deque[Item] = deque()
        self._cond = threading.Condition()
        self.nbytes = 0
        self._wake_at = 1
        self._hurry = False

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Item) -> None:
        with self._cond:
            self._items.append(item)
            self.nbytes += item.nbytes
            if len(self._items) == 1 or len(self._items) >= self._wake_at:
                self._cond.notify()

    def hurry(self) -> None:
        """Make a waiting `take` return now (shutdown: drain without lingering)."""
        with self._cond:
            self._hurry = True
            self._cond.notify_all()

    def take(self, max_items: int, not_before: float, idle_timeout_s: float) -> list[Item]:
        """Wait up to `idle_timeout_s` for a first item, then until monotonic time `not_before` or
        until `max_items` are waiting (or `wake`), and return up to `max_items` in order."""
        with self._cond:
            if not self._items and not self._hurry:
                self._cond.wait(idle_timeout_s)
                if not self._items:
                    return []
            self._wake_at = max_items
            while len(self._items) < max_items and not self._hurry:
                remaining = not_before - time.monotonic()
                if remaining <= 0 or not self._cond.wait(remaining):
                    break
            self._wake_at = 1
            n = min(max_items, len(self._items))
            out = [self._items.popleft() for _ in range(n)]
            self.nbytes -= sum(i.nbytes for i in out)
            return out
