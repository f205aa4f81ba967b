"""What both ends of a reliable hop share: run ids, the `SeqGap` report, the hop's endpoints."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from observer.bus import Endpoints
from observer.config import Config


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


@dataclass(frozen=True, slots=True)
class SeqGap:
    """Seqs ``first..last`` (inclusive) of one producer run that will never be delivered."""

    producer: str
    run_id: str
    first: int
    last: int
    detected_by: str
    reason: str
    at_ns: int

    @property
    def count(self) -> int:
        return self.last - self.first + 1


def hop_endpoints(cfg: Config, hop: str) -> tuple[str, str]:
    """(data endpoint, ack endpoint) of a reliable hop: 'ingest' or 'archive'."""
    eps = Endpoints(cfg)
    return eps[hop], eps[hop + "_ack"]
