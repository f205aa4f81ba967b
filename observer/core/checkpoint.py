"""The sampler checkpoint: durable core state between restarts (under ``state_dir(cfg)``).

``sampler.json`` — per watched symbol, the last *durable* sample's end and carried trade state, and
the mitigation level schedule, and per WS producer the last frame received from its run
(`FeedMark`). It is rewritten (write + rename, atomic) just before the core
publishes ingest acks that depend on it, so a tick acknowledged upstream is always reflected in
it: a restarted core resumes each symbol's windows exactly where the durable archive ends. No fsync:
it protects against a process crash (kill -9); a machine crash also loses the producers' buffers.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import msgspec

from observer.atomic import write_atomic
from observer.core.feed_outage import FeedMark
from observer.schema import Tick


class SymbolCheckpoint(msgspec.Struct, frozen=True, kw_only=True):
    next_start_ms: int
    provider: str
    market: str
    last: Tick


class SamplerCheckpoint(msgspec.Struct, frozen=True, kw_only=True):
    day: date
    levels: list[tuple[int, int]]
    symbols: dict[str, SymbolCheckpoint]
    # per WS producer, the last frame received from its current run: a restarted producer's
    # outage starts there, even when the core crashed in between
    feeds: dict[str, FeedMark] = {}


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(SamplerCheckpoint)


def save_checkpoint(path: Path, checkpoint: SamplerCheckpoint) -> None:
    write_atomic(path, _encoder.encode(checkpoint), fsync=False)


def load_checkpoint(path: Path, day: date) -> SamplerCheckpoint | None:
    try:
        checkpoint = _decoder.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError):
        return None
    return checkpoint if checkpoint.day == day else None
