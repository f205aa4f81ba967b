"""What the writer has made durable, followed by archive seq.

The core notes, per archive seq it sends, a receive time (event lag) and each scalp sample; when the
writer's cumulative ack passes that seq, the lag is counted and the sample becomes the symbol's last
*durable* one: the sampler checkpoint (`checkpoint.py`) a restarted core resumes from. The
checkpoint (with the feed marks: each producer run's last frame) is written only when it changed and only just before acks go upstream, so a tick
acknowledged to its producer is always reflected in it.
"""

from __future__ import annotations

from collections import deque
from datetime import date, datetime
from pathlib import Path
from typing import Any

from observer.core.checkpoint import SamplerCheckpoint, SymbolCheckpoint, save_checkpoint
from observer.core.feed_outage import FeedMark
from observer.core.sampler import Sample, to_ms
from observer.core.stats import CoreCounters

_INFLIGHT_MAX = 200_000


class DurableProgress:
    def __init__(self, checkpoint_path: Path, counts: CoreCounters):
        self._path = checkpoint_path
        self._counts = counts
        # bounded: while the writer is stalled the oldest entries fall off (the lag figure and the
        # checkpoint only lag behind; nothing archived depends on them)
        self._samples: deque[tuple[int, Sample[Any]]] = deque(maxlen=_INFLIGHT_MAX)
        self._lag: deque[tuple[int, datetime]] = deque(maxlen=_INFLIGHT_MAX)
        self.symbols: dict[str, SymbolCheckpoint] = {}
        self.dirty = False

    def restore(self, symbols: dict[str, SymbolCheckpoint]) -> None:
        self.symbols = dict(symbols)

    def sent_received_at(self, seq: int, received_at: datetime) -> None:
        self._lag.append((seq, received_at))

    def sent_sample(self, seq: int, sample: Sample[Any]) -> None:
        self._samples.append((seq, sample))

    def advance(self, acked: int, now: datetime) -> None:
        """The writer made everything up to `acked` durable."""
        while self._lag and self._lag[0][0] <= acked:
            self._counts.lag((now - self._lag.popleft()[1]).total_seconds())
        while self._samples and self._samples[0][0] <= acked:
            _, sample = self._samples.popleft()
            self._counts.samples_written[sample.symbol] += 1
            self.symbols[sample.symbol] = SymbolCheckpoint(
                next_start_ms=to_ms(sample.end),
                provider=sample.provider,
                market=sample.market,
                last=sample.last,
            )
            self.dirty = True

    def save_if_changed(self, day: date, levels: list[tuple[int, int]], feeds: dict[str, FeedMark]) -> None:
        if self.dirty:
            checkpoint = SamplerCheckpoint(day=day, levels=levels, symbols=self.symbols, feeds=feeds)
            save_checkpoint(self._path, checkpoint)
            self.dirty = False
