"""The writer's end of the ``archive_stream`` hop: every committed line, with its file and offset,
to the archive-stream sink (``sinks.jetstream``), after the fsync.

The committer thread hands each commit's placed lines to `StreamForwarder.offer` (a list append
under a lock); the writer's loop thread `flush`es them into a `ReliableSender` (acks, replay buffer,
resends) of its own, bounded by ``[jetstream] replay_buffer_bytes``. The writer's acks upstream never
wait for this hop: a slow or dead sink costs replay-buffer memory here, then (past the bound) a
counted `SeqGap`, never the archive or the tick path.
"""

from __future__ import annotations

import threading
from typing import Any

import msgspec
import zmq

from observer.config import Config
from observer.reliable import ReliableSender, SeqGap, hop_endpoints
from observer.schema import StreamLine
from sinks.writer.committer import Placed


class StreamForwarder:
    """`offer` from the committer thread; `flush`, `pump`, `close` from the writer's loop thread."""

    def __init__(self, ctx: zmq.Context[Any], cfg: Config, *, producer: str, run_id: str, on_gap: Any):
        data_ep, ack_ep = hop_endpoints(cfg, "archive_stream")
        self._on_gap = on_gap
        self.sender = ReliableSender(
            ctx,
            cfg,
            producer,
            data_ep,
            ack_ep,
            run_id=run_id,
            on_gap=self._gap,
            replay_buffer_bytes=cfg.jetstream.replay_buffer_bytes,
            transmit_on_send=False,
        )
        self._lock = threading.Lock()
        self._placed: list[Placed] = []
        self.gaps = 0

    def offer(self, placed: list[Placed]) -> None:
        """Committer thread, after a commit's fsync. Never blocks on the bus."""
        with self._lock:
            self._placed.extend(placed)

    def flush(self) -> None:
        """Loop thread: put what was committed since the last call on the hop."""
        with self._lock:
            placed, self._placed = self._placed, []
        send = self.sender.send
        for path, offset, (rec, line) in placed:
            send(
                StreamLine(
                    path=str(path),
                    offset=offset,
                    track=rec.track,
                    market=rec.market,
                    record_id=rec.record_id,
                    line=msgspec.Raw(line),
                )
            )
        self.sender.pump()

    def _gap(self, gap: SeqGap) -> None:
        self.gaps += 1
        self._on_gap(gap)

    def close(self, timeout_s: float) -> bool:
        """Flush, wait up to `timeout_s` for the sink's acks, close. True when nothing is left."""
        self.flush()
        done = self.sender.wait_all_acked(timeout_s)
        self.sender.close()
        return done
