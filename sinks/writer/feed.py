"""The writer's side of the public feed: every committed line, published after its fsync.

The committer hands each commit's fresh lines to `FeedThread.offer` (a list append under a lock:
nothing on the commit path encodes, sends or waits). The feed thread owns the ``feed`` XPUB socket
(`observer.feed_sockets.FeedPublisher`) and publishes each line with its topic and per-topic seq while
anyone subscribes to line topics (encoding every line costs ~4 µs, 40 % of the writer's CPU per
record when nobody listens; a late joiner sees seqs as they are, like any PUB/SUB joiner), plus a
`FeedStats` on ``feed.stats`` every ``STATS_INTERVAL_S``. Bounds: zmq drops what a slow subscriber
does not take (holes in ``seq``); if the thread itself falls ``MAX_QUEUED`` lines behind, the
oldest are dropped and counted in ``FeedStats.dropped``. A feed that cannot bind is logged and
disabled: the archive never depends on it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

import zmq

from observer.bus import BusError, Endpoints
from observer.config import Config
from observer.feed_sockets import FeedPublisher
from sinks.writer.queue import Item

log = logging.getLogger("observer.writer.feed")
STATS_INTERVAL_S = 5.0
MAX_QUEUED = 200_000


class FeedThread(threading.Thread):
    def __init__(self, ctx: zmq.Context[Any], cfg: Config, *, run_id: str, now: Callable[[], datetime]):
        super().__init__(name="writer-feed", daemon=True)
        self.ctx = ctx
        self.cfg = cfg
        self.run_id = run_id
        self.now = now
        self.address = Endpoints(cfg)["feed"]
        self._queue: deque[Item] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self.dropped = 0
        self.published = 0
        self.unheard = 0  # lines not encoded at all: nobody subscribed to line topics
        self._subscriptions: set[bytes] = set()
        self._line_listeners = False

    def offer(self, items: list[Item]) -> None:
        """Called by the committer after a commit's fsync. Never blocks on the feed."""
        with self._cond:
            self._queue.extend(items)
            over = len(self._queue) - MAX_QUEUED
            for _ in range(max(over, 0)):
                self._queue.popleft()
            if over > 0:
                self.dropped += over
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()

    def run(self) -> None:
        try:
            pub = FeedPublisher(self.ctx, self.cfg, self.address, run_id=self.run_id, sock_type=zmq.XPUB)
        except BusError as e:
            log.error("public feed disabled: %s", e)
            return
        try:
            self._loop(pub)
        except zmq.ContextTerminated:
            pass
        finally:
            pub.close(linger_ms=1_000)  # bounded: the last lines and the final stats get out

    def _take_subscriptions(self, pub: FeedPublisher) -> None:
        """The XPUB socket tells who listens: encoding and sending every line (~4 µs each) is done
        only while some subscription can match a line topic (anything but ``feed.stats``)."""
        while True:
            try:
                msg = pub.sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            if msg[:1] == b"\x01":
                self._subscriptions.add(msg[1:])
            elif msg[:1] == b"\x00":
                self._subscriptions.discard(msg[1:])
        self._line_listeners = any(not p.startswith(b"feed.") for p in self._subscriptions)

    def _loop(self, pub: FeedPublisher) -> None:
        next_stats = 0.0
        while True:
            with self._cond:
                if not self._queue and not self._stopping:
                    self._cond.wait(STATS_INTERVAL_S)
                batch, self._queue = self._queue, deque()
                stopping = self._stopping
                pub.dropped = self.dropped
            self._take_subscriptions(pub)
            if self._line_listeners:
                for rec, line in batch:
                    pub.publish(rec.track, rec.market, rec.record_id, line, rec.partition_at)
                self.published += len(batch)
            else:
                pub.skip(len(batch))  # counted in n: a joiner learns how many lines went before it
                self.unheard += len(batch)
            now_mono = time.monotonic()
            if now_mono >= next_stats or stopping:
                next_stats = now_mono + STATS_INTERVAL_S
                pub.publish_stats(self.now(), final=stopping)
            if stopping:
                return
