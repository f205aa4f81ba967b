"""The durability ledger: the core acknowledges an ingest message only when what came of it is durable.

Every accepted ingest message (producer, run, seq) gets a `Pending` entry: ``need`` is the highest
archive seq derived from it (the writer must have acknowledged it), ``holds`` counts the open sample
windows its ticks feed (each adds the sample's archive seq to ``need`` when it closes). Per ingest
stream the entries form a queue in seq order; the cumulative ack moves over every leading entry that
has no holds and whose ``need`` the writer has acknowledged. So a kill -9 of the core loses nothing:
whatever is not acknowledged upstream is resent by its producer and derived again.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(slots=True)
class Pending:
    seq: int
    need: int = 0
    holds: int = 0

    def hold(self) -> None:
        self.holds += 1

    def settle(self, archive_seq: int | None) -> None:
        """A window holding this message closed (with its sample's archive seq, or None if unsampled)."""
        self.holds -= 1
        if archive_seq is not None and archive_seq > self.need:
            self.need = archive_seq


class AckLedger:
    def __init__(self) -> None:
        self._streams: dict[tuple[str, str], deque[Pending]] = {}

    def open(self, producer: str, run_id: str, seq: int) -> Pending:
        queue = self._streams.get((producer, run_id))
        if queue is None:
            queue = self._streams[(producer, run_id)] = deque()
        entry = Pending(seq)
        queue.append(entry)
        return entry

    def releasable(self, archive_acked: int) -> list[tuple[str, str, int]]:
        """(producer, run, seq) cumulative acks that may be published now."""
        out = []
        for (producer, run_id), queue in list(self._streams.items()):
            last = None
            while queue and queue[0].holds <= 0 and queue[0].need <= archive_acked:
                last = queue.popleft().seq
            if last is not None:
                out.append((producer, run_id, last))
            if not queue:
                del self._streams[(producer, run_id)]
        return out

    @property
    def pending(self) -> int:
        return sum(len(q) for q in self._streams.values())

    @property
    def held(self) -> int:
        return sum(1 for q in self._streams.values() for p in q if p.holds > 0)
