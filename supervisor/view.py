"""What the supervisor remembers from the event bus for the operator's status view: the latest
`SlotCommand` (topic ``slots``), `MitigationLevel` (``mitigation``) and `WorkerStats` per worker
(``stats.<worker>``), plus the stats carried by each worker's latest heartbeat."""

from __future__ import annotations

from typing import Any

import msgspec

from observer.bus import HEARTBEAT, MITIGATION, SLOTS, STATS
from observer.schema import (
    CoreStats,
    EventBody,
    Heartbeat,
    JetStreamStats,
    MitigationLevel,
    MonitorStats,
    SlotCommand,
    WorkerStats,
    WriterStats,
    WsCollectorStats,
)

TOPICS = [HEARTBEAT, SLOTS, MITIGATION, STATS]


class BusView:
    def __init__(self) -> None:
        self.slots: SlotCommand | None = None
        self.mitigation: MitigationLevel | None = None
        self.stats: dict[str, WorkerStats] = {}
        self.heartbeat_stats: dict[str, dict[str, float]] = {}
        self.ignored = 0

    def handle(self, topic: str, body: EventBody) -> None:
        match body:
            case SlotCommand():
                self.slots = body  # the latest wins: a restarted core starts its versions again
            case MitigationLevel():
                self.mitigation = body
            case CoreStats() | WriterStats() | WsCollectorStats() | MonitorStats() | JetStreamStats():
                self.stats[body.worker] = body
            case Heartbeat():
                self.heartbeat_stats[body.worker] = dict(body.stats)
            case _:
                self.ignored += 1

    def slots_data(self) -> dict[str, Any] | None:
        return None if self.slots is None else msgspec.to_builtins(self.slots)

    def status_data(self) -> dict[str, Any]:
        return {
            "mitigation": None if self.mitigation is None else msgspec.to_builtins(self.mitigation),
            "slots": self.slots_data(),
            "stats": {name: msgspec.to_builtins(s) for name, s in sorted(self.stats.items())},
            "heartbeat_stats": dict(sorted(self.heartbeat_stats.items())),
        }
