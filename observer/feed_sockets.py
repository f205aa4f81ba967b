"""The public feed's sockets: `FeedPublisher` (the writer's live ``feed`` PUB and ``observer replay``'s
``replay_feed`` XPUB) and `FeedSubscriber` (any consumer). Topics, endpoints and the feed decoder are
in ``observer.bus``; the messages (`FeedMessage`, `FeedStats`) in ``observer.schema``.

Data flow: writer committer / replay reader -> `FeedPublisher.publish` (topic frame + FeedMessage,
never blocks; a slow subscriber loses messages at the HWM and sees holes in ``seq``) -> zmq ->
`FeedSubscriber.recv`.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import msgspec
import zmq

from observer.bus import FEED_STATS_TOPIC, bind, connect, feed_decoder, feed_topic, make_socket
from observer.config import Config
from observer.schema import ArchiveKind, FeedBody, FeedMessage, FeedStats

_encoder = msgspec.json.Encoder()
_NOBLOCK = int(zmq.NOBLOCK)
_MORE_NOBLOCK = int(zmq.NOBLOCK | zmq.SNDMORE)


class FeedPublisher:
    """A feed PUB/XPUB socket: per-topic seq, `FeedMessage` encoding, never blocks.

    What zmq drops for a slow subscriber shows up as holes in that topic's ``seq``; `dropped` counts
    what the caller itself had to drop before publishing (reported in `FeedStats`)."""

    def __init__(
        self,
        ctx: zmq.Context[Any],
        cfg: Config,
        address: str,
        *,
        run_id: str,
        replay: bool = False,
        sock_type: int = zmq.PUB,
    ):
        self.sock = make_socket(ctx, sock_type, cfg, hwm=cfg.bus.send_hwm)
        bind(self.sock, address, cfg)
        self.address = address
        self.run_id = run_id
        self.replay = replay
        self.seqs: dict[str, int] = {}
        self.published: dict[str, int] = {}
        self.count = 0  # lines of this run, every topic, sent or skipped (`FeedMessage.n`)
        self.skipped = 0
        self.dropped = 0

    def publish(self, track: ArchiveKind, market: str, record_id: str, line: bytes, at: datetime) -> str:
        topic = feed_topic(track, market, record_id, line)
        seq = self.seqs.get(topic, 0) + 1
        self.seqs[topic] = seq
        self.count += 1
        body = FeedMessage(
            topic=topic,
            track=track,
            seq=seq,
            run_id=self.run_id,
            at=at,
            sent_at_ns=time.time_ns(),
            line=msgspec.Raw(line),
            replay=self.replay,
            n=self.count,
        )
        self.published[track] = self.published.get(track, 0) + 1
        self._send(topic, _encoder.encode(body))
        return topic

    def skip(self, lines: int) -> None:
        """`lines` not sent (nobody listens to line topics): they still count in ``n``."""
        self.count += lines
        self.skipped += lines

    def publish_stats(self, at: datetime, *, final: bool = False) -> None:
        stats = FeedStats(
            run_id=self.run_id,
            at=at,
            published=dict(self.published),
            dropped=self.dropped,
            skipped=self.skipped,
            replay=self.replay,
            final=final,
        )
        self._send(FEED_STATS_TOPIC, _encoder.encode(stats))

    def _send(self, topic: str, body: bytes) -> None:
        # two plain sends with int flags: send_multipart's per-call enum arithmetic costs ~1 us a message
        try:
            self.sock.send(topic.encode(), _MORE_NOBLOCK)
            self.sock.send(body, _NOBLOCK)
        except zmq.Again:
            pass  # PUB/XPUB drop at the HWM for all parts at once: the subscriber sees the hole in seq

    def close(self, linger_ms: int = 0) -> None:
        self.sock.close(linger=linger_ms)


class FeedSubscriber:
    """SUB on a feed endpoint (live or replay), subscribed to topic prefixes ("" = everything)."""

    def __init__(self, ctx: zmq.Context[Any], cfg: Config, address: str, topics: list[str]):
        self.sock = make_socket(ctx, zmq.SUB, cfg, hwm=cfg.bus.recv_hwm)
        for topic in topics or [""]:
            self.sock.setsockopt(zmq.SUBSCRIBE, topic.encode())
        connect(self.sock, address, cfg)
        self.malformed = 0

    def recv(self, timeout_ms: int) -> tuple[str, FeedBody] | None:
        """One message, or None when nothing came within `timeout_ms`. Malformed ones are counted."""
        if not self.sock.poll(timeout_ms):
            return None
        frames = self.sock.recv_multipart()
        if len(frames) != 2:
            self.malformed += 1
            return None
        try:
            return frames[0].decode(), feed_decoder.decode(frames[1])
        except (msgspec.DecodeError, UnicodeDecodeError):
            self.malformed += 1
            return None

    def close(self) -> None:
        self.sock.close(linger=0)
